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
INIT ?=
DEVICES ?=
NODES ?=
CKPT ?=
COMPARE ?=
N ?= 64
LABEL ?= all
FORMAT ?= torchscript
IMAGE ?=
MASK ?=
OUT ?=
DAMAGE ?=
JOBS ?= auto
# The data module's root: one level further down when the experiment wraps an image data module (repair).
DATA_ROOT_ARG = $(if $(shell grep -l 'datamodules.repair.damaged.RepairDataModule' $(EXPERIMENT) 2>/dev/null),--data.init_args.data.init_args.root,--data.init_args.root)

.PHONY: install train test sample eval bench bench-quality repair experiments clean attention interpolate export predict spoken-digits

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
##            [RESUME=last|auto|path] [INIT=path/to/last.ckpt] [ARGS="--model.n_critic=2 ..."]
## INIT: a new run (fine-tuning) whose G, D and EMA weights come from that checkpoint (docs/training.md)
## DATA_DIR (the datamodule's root) defaults to the experiment's own, ./data for celeba and cifar10.
## make train MODEL=inpaint|restore [DATA=digits|celeba|cifar10|folder]: image repair (inpainting, blind restoration)
## make train DATA=oracle: the text GAN on the synthetic oracle benchmark
## make train DATA=text TEXT=path/to/corpus.txt: the text GAN on a corpus, one sentence per line
## make train DATA=moving_digits: the hybrid video GAN on moving digits (convolutions draw each digit once,
##   attention across time moves it; 16 frames of 32x32; MODEL=videotransformer: the video transformer GAN)
## make train DATA=videos DATA_DIR=~/clips: the hybrid video GAN on a folder of videos (GPU; MODEL=videotransformer)
## make train DATA=spoken_digits: the speech GAN on the embedded spoken digits (DATA=sc09 DATA_DIR=...: SC09)
train: install
	@test -f $(EXPERIMENT) || { echo "error: no experiment $(EXPERIMENT) for MODEL=$(MODEL) DATA=$(DATA); expected one of: $$(cd experiments && ls *.yaml | sed 's/\.yaml$$//' | tr '\n' ' ')" >&2; exit 2; }
	$(BIN)/sagan fit --config $(EXPERIMENT) $(if $(DATA_DIR),$(DATA_ROOT_ARG)=$(DATA_DIR)) $(if $(TEXT),--data.init_args.path=$(TEXT)) $(PARALLEL) $(if $(RESUME),--resume $(RESUME)) $(if $(INIT),--init_from $(INIT)) $(ARGS)

## make test [JOBS=auto]: the whole suite on CPU, no network, in JOBS worker processes (pytest-xdist; auto: one
##   per core, at most 8; JOBS=0 runs it in this process)
test: install
	$(BIN)/python -m pytest -q -n $(JOBS) --maxprocesses=8 --dist worksteal

## make sample CKPT=runs/.../last.ckpt [N=64] [LABEL=all|3]: a GAN's images (grid + PNGs in <ckpt>_samples/)
##   or a TextGAN's sentences (<ckpt>_samples.txt, one per line); ARGS="--out PATH --seed 1"
sample: install
	@test -n "$(CKPT)" || { echo "error: make sample needs CKPT=<path to a .ckpt written by make train>" >&2; exit 2; }
	$(BIN)/sagan sample --ckpt $(CKPT) --n $(N) --label $(LABEL) $(ARGS)

## make eval CKPT=runs/.../last.ckpt [ARGS="--num_samples 50000 --is_splits 10"]: metrics as JSON beside CKPT,
##   with the recipe that makes them comparable
## make eval COMPARE="A.json B.json": two scores side by side; exit status 2, naming the first differing field,
##   when their recipes differ
eval: install
	@test -n "$(CKPT)$(COMPARE)" || { echo "error: make eval needs CKPT=<path to a .ckpt written by make train> (or COMPARE=\"A.json B.json\")" >&2; exit 2; }
	$(BIN)/sagan eval $(if $(COMPARE),--compare $(COMPARE),--ckpt $(CKPT)) $(ARGS)

## make attention CKPT=runs/.../last.ckpt [ARGS="--points 6 --label 3 --layer generator.attention.0 --seed 1"]:
##   attention panels (PNG per layer) of G and D, or a text GAN's token heat maps, in <ckpt>_attention/
attention: install
	@test -n "$(CKPT)" || { echo "error: make attention needs CKPT=<path to a .ckpt written by make train>" >&2; exit 2; }
	$(BIN)/sagan attention --ckpt $(CKPT) $(ARGS)

## make interpolate CKPT=runs/.../last.ckpt [ARGS="--seeds 0,1,2 --classes 3,5,7 --steps 8 --mode lerp"]:
##   a walk through noise (and classes) as strip.png and interpolation.gif in <ckpt>_interpolation/
interpolate: install
	@test -n "$(CKPT)" || { echo "error: make interpolate needs CKPT=<path to a .ckpt written by make train>" >&2; exit 2; }
	$(BIN)/sagan interpolate --ckpt $(CKPT) $(ARGS)

## make export CKPT=runs/.../last.ckpt [FORMAT=torchscript|exported|onnx] [ARGS="--out G.pt"]: the EMA generator
##   alone (<ckpt>_generator.pt|.pt2|.onnx) and its JSON card; FORMAT=onnx installs the `export` extra
export: install
	@test -n "$(CKPT)" || { echo "error: make export needs CKPT=<path to a .ckpt written by make train>" >&2; exit 2; }
	$(if $(filter onnx,$(FORMAT)),$(BIN)/python -m pip install --quiet -e '.[export]')
	$(BIN)/sagan export --ckpt $(CKPT) --format $(FORMAT) $(ARGS)

## make predict CKPT=runs/<name>/<run>/checkpoints/last.ckpt [ARGS="--trainer.limit_predict_batches=4"]:
##   `sagan predict` with the run's config: one EMA sample per held-out image (its class), PNGs in <ckpt>_predictions/
predict: install
	@test -n "$(CKPT)" || { echo "error: make predict needs CKPT=<path to a .ckpt written by make train>" >&2; exit 2; }
	$(BIN)/sagan predict --config $(dir $(CKPT))../config.yaml --ckpt_path $(CKPT) $(ARGS)

## make bench [ARGS="--precision bf16-mixed --compile"]: training and data-loading speed as JSON lines, with each
##   experiment's img/s on this device and the wall time to its own budget (ARGS="--only sagan_celeba": any
##   image-GAN experiment by name)
bench: install
	$(BIN)/sagan bench $(ARGS)

## make bench-gpu [PEERS=dir] [ARGS="--quick --out gpu.jsonl"]: on a CUDA machine, the GPU-only tests (pytest -m gpu),
##   then the speed table (SAGAN-64, TransGAN CIFAR-10, attention at 128x128; eager fp32, bf16, compile, CUDA
##   graphs), with the peers' own code when PEERS holds their checkouts (sagan/benchmarks/peers.py)
.PHONY: bench-gpu
PEERS ?=
bench-gpu: install
	$(BIN)/python -m pytest -q -m gpu tests/sagan/benchmarks/test_gpu.py
	$(BIN)/sagan bench-gpu $(if $(PEERS),--peers $(PEERS)) $(ARGS)

## make bench-quality [ARGS="--only stacked --stacked_iters 6000"]: digits FID / IS / KID / intra-class FID,
##   stacked-digits modes and KL; ARGS="--recipe r3gan": the same with the relativistic loss and R1 + R2
## make bench-quality ARGS="--only video": the video GAN's moving-digits FD, frame digits FID and flicker against
##   the floor and no-motion baselines
## make bench-quality ARGS="--only speech": the speech GAN's IS / FD / digit accuracy against the floor and baselines
## make bench-quality ARGS="--only grow [--grow_iters 1200]": SAGAN and TransGAN grown 8 -> 16 -> 32 or not, at equal
##   images seen: digits FID / IS / KID / intra-class FID and training time (docs/image.md, "Progressive growing")
## make bench-quality ARGS="--only text [--text_run RUN]": the oracle text GAN's NLL-oracle against NLL-test over
##   softmax temperatures, MLE model and GAN (trains DATA=oracle first without --text_run)
bench-quality: install
	$(BIN)/sagan bench-quality $(ARGS)

## make spoken-digits: rebuild datamodules/embedded/spoken_digits_8k.npz with eSpeak NG (apt-get install espeak-ng)
spoken-digits: install
	$(BIN)/python scripts/make_spoken_digits.py $(ARGS)
## make bench-repair [ARGS="--repair_ckpt CKPT --restore_ckpt CKPT | --baselines_only"]: image repair vs classical
##   baselines on the digits, small and large masks (= make bench-quality ARGS="--only repair ...")
.PHONY: bench-repair
bench-repair: install
	$(BIN)/sagan bench-quality --only repair $(ARGS)
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
