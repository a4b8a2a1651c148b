# mk/self-train.mk — `make self-train ITER=3`: the self-training loop, run by the CLI (the Makefile includes it).
#
# The loop exists once, in `gramr2 self-train` (stages/self_train.py); this target only passes it the unlabeled
# data and -o, -c and -s values: ST_UNLABELED, ST_RUN, ST_RECIPE, ITER (self_train.iterations), ST_RM
# (self_train.rm), ST_PROVER (prove.prover), ST_TRAIN (self_train.train_data), ST_INIT (self_train.init),
# ST_STEPS (train.max_steps), then ST_SET.
# Per iteration i it writes ST_RUN/iter-i/{labeled,proved,kept,train,rm}; finished steps (manifest done) are
# skipped, so rerunning `make self-train` resumes where a kill left it. Keep ITER fixed for a run directory:
# it decides how the unlabeled data is split.
#
# The defaults are the outputs of `make demo` (DEMO=runs/demo): its initial RM (rm0), its prover, its unlabeled
# split and the proved pairs rm0 was trained on; the recipe is the demo's, and each iteration's RM trains for
# ST_STEPS steps from the backbone, as the demo's rm0 did (DEMO_RM_STEPS).
#
#   make demo && make self-train ITER=2
#   make self-train ITER=2 ST_RUN=runs/st-cont ST_INIT=continue ST_SET="-s self_label.orders=ab"

DEMO ?= runs/demo
ITER ?= 3
ST_RECIPE ?= recipes/demo.yaml
ST_RUN ?= runs/self-train
ST_RM ?= $(DEMO)/rm0
ST_PROVER ?= $(DEMO)/prover
ST_UNLABELED ?= $(DEMO)/data/unlabeled
ST_TRAIN ?= $(DEMO)/proved
ST_INIT ?= backbone
ST_STEPS ?= 40
ST_SET ?=
ST_GRAMR2 ?= $(if $(GRAMR2),$(GRAMR2),gramr2)
# ST_SETUP: the Makefile's venv install target; ST_SETUP= skips it
ST_SETUP ?= setup

.PHONY: self-train self-train-status

self-train: $(ST_SETUP)
	$(ST_GRAMR2) self-train $(ST_UNLABELED) -o $(ST_RUN) -c $(ST_RECIPE) -s self_train.iterations=$(ITER) \
	  -s self_train.rm=$(ST_RM) -s prove.prover=$(ST_PROVER) -s self_train.train_data=$(ST_TRAIN) \
	  -s self_train.init=$(ST_INIT) -s train.max_steps=$(ST_STEPS) $(ST_SET)
	@echo "self-training done: $(ST_RUN)/iter-$(ITER)/rm (per-step numbers in each step's summary.json)" >&2

self-train-status:
	@for d in $(ST_RUN)/iter-*/*/; do printf '%-40s %s\n' "$$d" \
	  "$$(grep -qs '"done": true' $$d/manifest*.json && echo done || echo unfinished)"; done
