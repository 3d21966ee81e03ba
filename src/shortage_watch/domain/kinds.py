"""The kinds of record the ledger takes in. A module of its own so that the CLI can offer them as
choices without loading the record models (pydantic)."""

RECORD_KINDS: tuple[str, ...] = ("stoppage_notice", "distributor_report", "shortage_report")
