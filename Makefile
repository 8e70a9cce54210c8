# Every user-facing command of the project. `make train` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= digits
# Default model: sagan when it has an experiment for DATA, else the first model that has one
# (DATA=text and DATA=oracle pick textgan).
MODEL ?= $(or $(patsubst experiments/%_$(DATA).yaml,%,$(firstword $(wildcard experiments/sagan_$(DATA).yaml experiments/*_$(DATA).yaml))),sagan)
EXPERIMENT := experiments/$(MODEL)_$(DATA).yaml
TEXT ?=
ARGS ?=
DATA_DIR ?=
RESUME ?=
DEVICES ?=
NODES ?=
CKPT ?=
N ?= 64
LABEL ?= all
IMAGE ?=
MASK ?=
OUT ?=
DAMAGE ?=
# The data module's root: one level further down when the experiment wraps an image data module (repair).
DATA_ROOT_ARG = $(if $(shell grep -l 'datamodules.repair.RepairDataModule' $(EXPERIMENT) 2>/dev/null),--data.init_args.data.init_args.root,--data.init_args.root)

.PHONY: install train test sample eval bench bench-quality repair experiments clean

$(BIN)/sagan: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/sagan

# DEVICES/NODES: --trainer.devices / --trainer.num_nodes, and DDP (one reducer per network) when above 1
PARALLEL := $(if $(DEVICES),--trainer.devices=$(DEVICES)) $(if $(NODES),--trainer.num_nodes=$(NODES)) \
	$(if $(filter-out 0 1 auto -1,$(DEVICES) $(NODES)),--trainer.strategy=ddp)

## make train [MODEL=sagan] [DATA=digits|celeba|cifar10|folder] [DATA_DIR=data] [DEVICES=N] [NODES=M]
##            [RESUME=last|auto|path] [ARGS="--model.n_critic=2 ..."]
## DATA_DIR (the datamodule's root) defaults to the experiment's own, ./data for celeba and cifar10.
## make train MODEL=inpaint|restore [DATA=digits|celeba|cifar10|folder]: image repair (inpainting, blind restoration)
## make train DATA=oracle: the text GAN on the synthetic oracle benchmark
## make train DATA=text TEXT=path/to/corpus.txt: the text GAN on a corpus, one sentence per line
train: install
	@test -f $(EXPERIMENT) || { echo "error: no experiment $(EXPERIMENT) for MODEL=$(MODEL) DATA=$(DATA); expected one of: $$(cd experiments && ls *.yaml | sed 's/\.yaml$$//' | tr '\n' ' ')" >&2; exit 2; }
	$(BIN)/sagan fit --config $(EXPERIMENT) $(if $(DATA_DIR),$(DATA_ROOT_ARG)=$(DATA_DIR)) $(if $(TEXT),--data.init_args.path=$(TEXT)) $(PARALLEL) $(if $(RESUME),--resume $(RESUME)) $(ARGS)

## make test: the whole suite on CPU, no network
test: install
	$(BIN)/python -m pytest -q

## make sample CKPT=runs/.../last.ckpt [N=64] [LABEL=all|3]: a GAN's images (grid + PNGs in <ckpt>_samples/)
##   or a TextGAN's sentences (<ckpt>_samples.txt, one per line); ARGS="--out PATH --seed 1"
sample: install
	@test -n "$(CKPT)" || { echo "error: make sample needs CKPT=<path to a .ckpt written by make train>" >&2; exit 2; }
	$(BIN)/sagan sample --ckpt $(CKPT) --n $(N) --label $(LABEL) $(ARGS)

## make eval CKPT=runs/.../last.ckpt [ARGS="--num_samples 50000 --is_splits 10"]: metrics as JSON beside CKPT
eval: install
	@test -n "$(CKPT)" || { echo "error: make eval needs CKPT=<path to a .ckpt written by make train>" >&2; exit 2; }
	$(BIN)/sagan eval --ckpt $(CKPT) $(ARGS)

## make bench [ARGS="--precision bf16-mixed --compile"]: training and data-loading speed as JSON lines
bench: install
	$(BIN)/sagan bench $(ARGS)

## make bench-quality [ARGS="--only stacked --stacked_iters 6000"]: digits FID / IS / KID, stacked-digits modes and KL
bench-quality: install
	$(BIN)/sagan bench-quality $(ARGS)

## make repair CKPT=runs/.../last.ckpt IMAGE=photo.png|DIR [MASK=mask.png|DIR] OUT=repaired.png|DIR [ARGS="--invert-mask"]
##   repairs images (mask: nonzero = hole; restoration checkpoints take none); any size, known pixels kept exactly
## make repair IMAGE=clean.png DAMAGE=strokes|scratches|noise|old_photo|... OUT=damaged.png: a damaged copy and its mask
repair: install
	@test -n "$(IMAGE)" -a -n "$(OUT)" || { echo "error: make repair needs IMAGE=<image or folder> and OUT=<file or folder>" >&2; exit 2; }
	$(BIN)/sagan repair $(if $(CKPT),--ckpt $(CKPT)) --image $(IMAGE) $(if $(MASK),--mask $(MASK)) $(if $(DAMAGE),--damage $(DAMAGE)) --out $(OUT) $(ARGS)

## make experiments: list the experiments MODEL/DATA can pick
experiments:
	@cd experiments && ls *.yaml | sed 's/\.yaml$$//'

clean:
	rm -rf runs .pytest_cache
