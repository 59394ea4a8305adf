"""The web UI (placeholder until the chat UI lands): built from a pipeline object."""

from __future__ import annotations

import html


def build_app(pipeline):
    import gradio as gr

    def answer(message, history):
        text = message if isinstance(message, str) else " ".join(
            part.get("text", "") for part in message if isinstance(part, dict))
        result = pipeline.ask(text, k=5)
        lines = [f"**{h.rank}.** {html.escape(h.clause.text)}  \n— {html.escape(str(h.citation))}" for h in result.hits]
        return "\n\n".join(lines) or "没有找到相关条款。"

    return gr.ChatInterface(answer, title="政策条款检索")


def launch(pipeline, host: str = "127.0.0.1", port: int = 7860) -> None:
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    build_app(pipeline).launch(server_name=host, server_port=port, ssr_mode=False, footer_links=[])
