"""Clause-level retrieval over Chinese policy documents, with citations.

>>> from qa import Pipeline, Corpus
>>> pipe = Pipeline.open("index/main", Corpus("docs", "folder"))
>>> answer = pipe.ask("江北区科技型企业总量有多少？")
>>> print(answer.hits[0].clause.text, answer.hits[0].citation)
"""

__version__ = "0.1.0"

from .errors import QAError  # noqa: E402
from .pipeline import Corpus, Pipeline  # noqa: E402
from .types import Answer, Citation, Clause, Document, Hit  # noqa: E402

__all__ = ["Pipeline", "Corpus", "Answer", "Hit", "Clause", "Citation", "Document", "QAError", "__version__"]
