"""Where an index is kept: one search interface (``qa.retrieval``), two stores.

* ``local`` (default): FAISS, BM25 postings and clause files in the index folder (``qa.index``).
* ``milvus``: everything a question needs in Milvus (Lite file, standalone server or cluster):
  clause rows with their text, citation fields, dense vector and BM25 weights; sections; the
  BM25 statistics (``qa.backends.milvus``, ``qa.backends.remote``). The building machine's
  folder keeps what an update needs (documents, postings); query servers need only the URI
  and the collection name.

Both answer the same questions with the same scores (tests/test_backends.py runs one
contract suite against both).
"""

BACKENDS = ("local", "milvus")
