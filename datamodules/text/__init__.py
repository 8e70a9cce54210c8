"""Text data: `base.TokenDataModule` (the base of every text data module: fixed-length token sequences,
the vocabulary saved with the run); corpus files (`corpus`) and the synthetic oracle benchmark (`oracle`)."""
