"""Image repair data: `damaged.RepairDataModule` wraps any image data module with holes (`masks`) or
damage (`degrade`)."""
