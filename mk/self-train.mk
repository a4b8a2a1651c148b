# mk/self-train.mk — `make self-train ITER=3`: the self-training loop as Make targets (the Makefile includes it).
#
# Per iteration i (1..ITER), on unlabeled batch i (ST_UNLABELED split by id hash: --shard-index i-1 --num-shards ITER):
#   iter-i/labeled  gramr2 self-label  (the current RM: ST_RM for i=1, else iter-(i-1)/rm)
#   iter-i/proved   gramr2 prove       (pseudo-labels as l, prover ST_PROVER)
#   iter-i/kept     gramr2 filter
#   iter-i/train    gramr2 data merge  (ST_TRAIN for i=1, else iter-(i-1)/train) + iter-i/kept
#   iter-i/rm       gramr2 pretrain    (from the backbone, or with ST_INIT=continue from the previous RM)
# Each step's target is its output's manifest (self-label, run as shard i-1 of ITER, writes
# manifest-<i-1>-of-<ITER>.json). A finished step ("done": true) is up to date; an unfinished
# one (killed mid-run) gets a forced rerun, which resumes where it stopped. The layout is that of
# `gramr2 self-train -c $(ST_RECIPE) -o $(ST_RUN)`, so either can continue what the other started.
# Keep ITER fixed for a run directory: it decides how the unlabeled data is split.
#
#   make self-train ITER=3
#   make self-train ITER=2 ST_RUN=runs/st-cont ST_INIT=continue ST_SET="-s self_label.orders=ab"

ITER ?= 3
ST_RECIPE ?= recipes/self-train.yaml
ST_RUN ?= runs/self-train
ST_RM ?= out/rm
ST_PROVER ?= out/prover
ST_UNLABELED ?= out/synth/unlabeled
ST_TRAIN ?= out/synth/labeled
ST_INIT ?= backbone
ST_SET ?=
ST_GRAMR2 ?= $(if $(GRAMR2),$(GRAMR2),gramr2)
# ST_SETUP: the Makefile's venv install target; ST_SETUP= skips it
ST_SETUP ?= setup
ST_OPTS = -c $(ST_RECIPE) $(ST_SET)

# $(call st_force,DIR): "st-force" unless DIR's manifest says done (evaluated when the Makefile is read).
st_force = $(shell grep -qs '"done": true' $(1)/manifest.json || echo st-force)
st_prev = $(shell expr $(1) - 1)
st_rm = $(if $(filter 1,$(1)),$(ST_RM),$(ST_RUN)/iter-$(call st_prev,$(1))/rm)
st_rm_dep = $(if $(filter 1,$(1)),,$(ST_RUN)/iter-$(call st_prev,$(1))/rm/manifest.json)
st_train_prev = $(if $(filter 1,$(1)),$(ST_TRAIN),$(ST_RUN)/iter-$(call st_prev,$(1))/train)
st_train_dep = $(if $(filter 1,$(1)),,$(ST_RUN)/iter-$(call st_prev,$(1))/train/manifest.json)
st_init = $(if $(filter continue,$(ST_INIT)),$(call st_rm,$(1)),backbone)
# self-label runs as shard i-1 of ITER, so its manifest is that shard's (shards.Output names it)
st_lab = $(ST_RUN)/iter-$(1)/labeled/$(if $(filter 1,$(ITER)),manifest.json,$(shell printf 'manifest-%05d-of-%05d.json' $(call st_prev,$(1)) $(ITER)))
st_lab_force = $(shell grep -qs '"done": true' $(call st_lab,$(1)) || echo st-force)

define st_iteration
$(call st_lab,$(1)): $(call st_rm_dep,$(1)) $(call st_lab_force,$(1))
	$(ST_GRAMR2) self-label $(ST_UNLABELED) --model $(call st_rm,$(1)) -o $(ST_RUN)/iter-$(1)/labeled \
	  --shard-index $(call st_prev,$(1)) --num-shards $(ITER) $(ST_OPTS)

$(ST_RUN)/iter-$(1)/proved/manifest.json: $(call st_lab,$(1)) \
    $(call st_force,$(ST_RUN)/iter-$(1)/proved)
	$(ST_GRAMR2) prove $(ST_RUN)/iter-$(1)/labeled --prover $(ST_PROVER) -o $(ST_RUN)/iter-$(1)/proved $(ST_OPTS)

$(ST_RUN)/iter-$(1)/kept/manifest.json: $(ST_RUN)/iter-$(1)/proved/manifest.json \
    $(call st_force,$(ST_RUN)/iter-$(1)/kept)
	$(ST_GRAMR2) filter $(ST_RUN)/iter-$(1)/proved -o $(ST_RUN)/iter-$(1)/kept $(ST_OPTS)

$(ST_RUN)/iter-$(1)/train/manifest.json: $(ST_RUN)/iter-$(1)/kept/manifest.json $(call st_train_dep,$(1)) \
    $(call st_force,$(ST_RUN)/iter-$(1)/train)
	$(ST_GRAMR2) data merge $(call st_train_prev,$(1)) $(ST_RUN)/iter-$(1)/kept -o $(ST_RUN)/iter-$(1)/train

$(ST_RUN)/iter-$(1)/rm/manifest.json: $(ST_RUN)/iter-$(1)/train/manifest.json \
    $(call st_force,$(ST_RUN)/iter-$(1)/rm)
	$(ST_GRAMR2) pretrain $(ST_RUN)/iter-$(1)/train -o $(ST_RUN)/iter-$(1)/rm --resume \
	  --init $(call st_init,$(1)) $(ST_OPTS)
endef

ST_ITERS := $(shell seq 1 $(ITER))
$(foreach i,$(ST_ITERS),$(eval $(call st_iteration,$(i))))

# Never delete a manifest when a step fails or is interrupted: the directory holds resumable output.
.PRECIOUS: $(ST_RUN)/iter-%/manifest.json $(foreach i,$(ST_ITERS),$(call st_lab,$(i)))
.PHONY: st-force self-train self-train-status
st-force:

self-train: $(ST_SETUP) $(ST_RUN)/iter-$(ITER)/rm/manifest.json
	@echo "self-training done: $(ST_RUN)/iter-$(ITER)/rm (per-step numbers in each step's summary.json)" >&2

self-train-status:
	@for d in $(ST_RUN)/iter-*/*/; do printf '%-40s %s\n' "$$d" \
	  "$$(grep -qs '"done": true' $$d/manifest*.json && echo done || echo unfinished)"; done
