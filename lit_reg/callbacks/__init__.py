"""Callbacks of the collection; each works with any LightningModule."""

__all__: list[str] = []
