"""Image data: `base.ImageDataModule` (the base of every image data module), `files.ImageFilesDataModule`
(the base of data sets of image files) and `decode` (reading any image file); the data sets: digits,
stacked digits, CelebA, CIFAR-10, ImageNet, any folder."""
