"""Where an index's vectors are kept and searched.

* ``local`` (default): FAISS in the index folder (``qa.dense``), BM25 postings beside it.
* ``milvus``: a Milvus collection (Lite file, standalone server or cluster) holds the dense
  vectors and the BM25 weights as sparse vectors (``qa.backends.milvus``); the index folder
  keeps the documents, clauses and the BM25 statistics.

Both answer the same questions with the same scores (tests/test_backends.py runs one
contract suite against both).
"""

BACKENDS = ("local", "milvus")
