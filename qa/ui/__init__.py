"""The web UI's pieces: rendering, who is asking, and one module of handlers per tab.

Handlers are plain functions of the pipeline (or the documents library, or the job queue) and
the signed-in user, testable without a browser; ``app.build_app`` only wires them to Blocks.
"""
