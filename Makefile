# Every user-facing command of the project. `make train` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODEL ?= sagan
DATA ?= digits
EXPERIMENT := experiments/$(MODEL)_$(DATA).yaml
ARGS ?=
RESUME ?=
CKPT ?=
N ?= 64
LABEL ?= all

.PHONY: install train test sample eval bench bench-quality experiments clean

$(BIN)/sagan: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/sagan

## make train [MODEL=sagan] [DATA=digits] [RESUME=last|path] [ARGS="--model.n_critic=2 ..."]
train: install
	@test -f $(EXPERIMENT) || { echo "error: no experiment $(EXPERIMENT) for MODEL=$(MODEL) DATA=$(DATA); expected one of: $$(cd experiments && ls *.yaml | sed 's/\.yaml$$//' | tr '\n' ' ')" >&2; exit 2; }
	$(BIN)/sagan fit --config $(EXPERIMENT) $(if $(RESUME),--resume $(RESUME)) $(ARGS)

## make test: the whole suite on CPU, no network
test: install
	$(BIN)/python -m pytest -q

## make sample CKPT=runs/.../last.ckpt [N=64] [LABEL=all|3]
sample: install
	@test -n "$(CKPT)" || { echo "error: make sample needs CKPT=<path to a .ckpt written by make train>" >&2; exit 2; }
	$(BIN)/sagan sample --ckpt $(CKPT) --n $(N) --label $(LABEL) $(ARGS)

## make eval CKPT=runs/.../last.ckpt [ARGS="--num_samples 50000 --is_splits 10"]: metrics as JSON beside CKPT
eval: install
	@test -n "$(CKPT)" || { echo "error: make eval needs CKPT=<path to a .ckpt written by make train>" >&2; exit 2; }
	$(BIN)/sagan eval --ckpt $(CKPT) $(ARGS)

## make bench [ARGS="--precision bf16-mixed --compile"]: training speed as JSON lines
bench: install
	$(BIN)/sagan bench $(ARGS)

## make bench-quality [ARGS="--stacked_iters 2500 --only stacked"]: digits FID / IS / KID, stacked-digits modes and KL
bench-quality: install
	$(BIN)/sagan bench-quality $(ARGS)

## make experiments: list the experiments MODEL/DATA can pick
experiments:
	@cd experiments && ls *.yaml | sed 's/\.yaml$$//'

clean:
	rm -rf runs .pytest_cache
