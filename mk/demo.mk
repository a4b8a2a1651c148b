# mk/demo.mk — `make demo`: the whole GRAM-R² pipeline on the embedded model, every step resumable.
# Each step's target is its output's manifest.json; a finished step ("done": true) is up to date, an unfinished
# one (killed mid-run) is rerun and resumes where it stopped. Outputs: runs/demo/.

DEMO ?= runs/demo
DEMO_RECIPE ?= recipes/demo.yaml
DEMO_SET ?=
DEMO_PROVER_STEPS ?= 24
DEMO_RM_STEPS ?= 40
DEMO_ITER_STEPS ?= 16
# rm1's learning rate = self_train.lr of recipes/demo.yaml (what `gramr2 self-train` uses; a test keeps them equal)
DEMO_ITER_LR ?= 5e-5
DEMO_G = $(GRAMR2)
DEMO_OPTS = -c $(DEMO_RECIPE) $(DEMO_SET)
demo_force = $(shell grep -qs '"done": true' $(1)/manifest.json || echo demo-force)

$(DEMO)/data/test/manifest.json: $(call demo_force,$(DEMO)/data/test)
	$(DEMO_G) data synth -o $(DEMO)/data $(DEMO_OPTS)

$(DEMO)/prover/manifest.json: $(DEMO)/data/test/manifest.json $(call demo_force,$(DEMO)/prover)
	$(DEMO_G) prover-train $(DEMO)/data/labeled -o $(DEMO)/prover --max-steps $(DEMO_PROVER_STEPS) --resume $(DEMO_OPTS)

$(DEMO)/proved/manifest.json: $(DEMO)/prover/manifest.json $(call demo_force,$(DEMO)/proved)
	$(DEMO_G) prove $(DEMO)/data/labeled --prover $(DEMO)/prover -o $(DEMO)/proved $(DEMO_OPTS)

$(DEMO)/rm0/manifest.json: $(DEMO)/proved/manifest.json $(call demo_force,$(DEMO)/rm0)
	$(DEMO_G) pretrain $(DEMO)/proved -o $(DEMO)/rm0 --max-steps $(DEMO_RM_STEPS) --resume $(DEMO_OPTS)

$(DEMO)/iter-1/labeled/manifest.json: $(DEMO)/rm0/manifest.json $(call demo_force,$(DEMO)/iter-1/labeled)
	$(DEMO_G) self-label $(DEMO)/data/unlabeled --model $(DEMO)/rm0 -o $(DEMO)/iter-1/labeled $(DEMO_OPTS)

$(DEMO)/iter-1/proved/manifest.json: $(DEMO)/iter-1/labeled/manifest.json $(call demo_force,$(DEMO)/iter-1/proved)
	$(DEMO_G) prove $(DEMO)/iter-1/labeled --prover $(DEMO)/prover -o $(DEMO)/iter-1/proved $(DEMO_OPTS)

$(DEMO)/iter-1/kept/manifest.json: $(DEMO)/iter-1/proved/manifest.json $(call demo_force,$(DEMO)/iter-1/kept)
	$(DEMO_G) filter $(DEMO)/iter-1/proved -o $(DEMO)/iter-1/kept $(DEMO_OPTS)

$(DEMO)/iter-1/train/manifest.json: $(DEMO)/iter-1/kept/manifest.json $(call demo_force,$(DEMO)/iter-1/train)
	$(DEMO_G) data merge $(DEMO)/proved $(DEMO)/iter-1/kept -o $(DEMO)/iter-1/train

$(DEMO)/rm1/manifest.json: $(DEMO)/iter-1/train/manifest.json $(call demo_force,$(DEMO)/rm1)
	$(DEMO_G) pretrain $(DEMO)/iter-1/train -o $(DEMO)/rm1 --init $(DEMO)/rm0 --max-steps $(DEMO_ITER_STEPS) \
	  --resume $(DEMO_OPTS) -s train.lr=$(DEMO_ITER_LR)

# evaluate writes a report directory (report.md/json, chart, predictions/<model>/ shards) and summary.json last
$(DEMO)/report/summary.json: $(DEMO)/rm1/manifest.json $(shell test -s $(DEMO)/report/summary.json || echo demo-force)
	$(DEMO_G) evaluate $(DEMO)/data/test --model $(DEMO)/rm0 --model $(DEMO)/rm1 -o $(DEMO)/report $(DEMO_OPTS)

$(DEMO)/best-of-4/manifest.json: $(DEMO)/rm1/manifest.json $(call demo_force,$(DEMO)/best-of-4)
	$(DEMO_G) rank list recipes/demo/best_of_4.jsonl --model $(DEMO)/rm1 -o $(DEMO)/best-of-4 $(DEMO_OPTS)

# Every step's target, kept when make is interrupted (Ctrl-C, kill): GNU make deletes the target of an interrupted
# recipe unless it is listed here by name (a pattern only covers implicit rules), and a deleted manifest.json
# would leave an output that no rerun may resume.
.PRECIOUS: $(DEMO)/data/test/manifest.json \
  $(DEMO)/prover/manifest.json \
  $(DEMO)/proved/manifest.json \
  $(DEMO)/rm0/manifest.json \
  $(DEMO)/iter-1/labeled/manifest.json \
  $(DEMO)/iter-1/proved/manifest.json \
  $(DEMO)/iter-1/kept/manifest.json \
  $(DEMO)/iter-1/train/manifest.json \
  $(DEMO)/rm1/manifest.json \
  $(DEMO)/report/summary.json \
  $(DEMO)/best-of-4/manifest.json
.PHONY: demo-force demo-run demo-clean
demo-force:

demo-run: $(DEMO)/report/summary.json $(DEMO)/best-of-4/manifest.json
	@$(PY) -m gramr2_cli.reports.demo_summary $(DEMO)

demo-clean:
	rm -rf $(DEMO)
