"""Errors a user can act on. The CLI prints their message without a traceback."""


class QAError(Exception):
    """Base class: the message says what went wrong and what to do."""


class EmptyQuestion(QAError):
    def __init__(self) -> None:
        super().__init__("请输入问题。(The question is empty: type a question.)")


class NoDocuments(QAError):
    """The docs folder has no readable documents."""


class IndexError_(QAError):
    """The index folder is missing, corrupt or was built with other settings."""


class IndexMissing(IndexError_):
    pass


class IndexMismatch(IndexError_):
    """The index was built with another format, encoder or tokenizer."""


class IndexCorrupt(IndexError_):
    """A file of the index is missing, truncated or does not match its checksum."""


class MissingDependency(QAError):
    """An optional package is not installed."""

    def __init__(self, package: str, extra: str = "") -> None:
        hint = f'pip install "qa-policy[{extra}]"' if extra else f"pip install {package}"
        super().__init__(f"{package} is not installed: {hint}")


class StoreGone(QAError):
    """The store a reader was using was replaced (a rebuild of a shared index): open the current one."""
