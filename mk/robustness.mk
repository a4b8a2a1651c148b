# mk/robustness.mk — `make robustness`: the probe defense experiment of docs/robustness.md (the Makefile includes it).
#
# Two demo reward models trained the same number of steps from the embedded SmolLM2-135M on gold rationales
# (no prover): rm-base on the labeled split, rm-aug on the labeled split plus `gramr2 data augment` pairs (opener
# negatives and, issue 25, injection negatives). Both are probed on the test split twice: with the defended
# rendering (the default: judge markup in responses neutralised) and with the undefended one (`prompt: <p>+raw`),
# the defended probe paired against the undefended one (`--baseline`) and rm-aug against rm-base, each with an
# exact sign test; both are evaluated on the ordinary test split. Each step's target is its output's
# manifest/summary, so a rerun resumes. Variables: ROB (output dir), ROB_STEPS (train steps), ROB_FRACTION
# (opener fraction), ROB_INJECTION (injection-negative fraction), ROB_PAIRS (probe.max_pairs, 0 = all; >= 64 so
# verdict injection gets 384 probes and length 64), ROB_PROMPT (judge prompt version), ROB_RAW_FAMILIES (what the
# undefended probe judges: the neutralisation changes only responses holding the judge's markup, i.e. verdict
# injection), ROB_SET (extra -s values). The defaults are the demo recipe's data and RM (two families, both orders,
# the short prompt) on 192 labeled pairs for 48 steps: the RM that judges (87.5%, docs/notes/learnability.md).
# The 2026-11-30 run of docs/robustness.md used ROB_PAIRS=8 ROB_INJECTION=0 ROB_STEPS=40 ROB_PROMPT=gramr2-v1
# and the recipe of that day.

ROB ?= runs/robustness
ROB_RECIPE ?= recipes/demo.yaml
ROB_STEPS ?= 48
ROB_FRACTION ?= 0.25
ROB_INJECTION ?= 0.25
ROB_PAIRS ?= 64
ROB_PROMPT ?= gramr2-short
ROB_RAW_FAMILIES ?= verdict_injection
ROB_SET ?= -s synth.n=192 -s synth.splits.unlabeled=0
ROB_G = $(GRAMR2)
ROB_OPTS = -c $(ROB_RECIPE) -s prompt=$(ROB_PROMPT) $(ROB_SET)
rob_force = $(shell grep -qs '"done": true' $(1)/manifest.json || echo rob-force)

$(ROB)/data/test/manifest.json: $(call rob_force,$(ROB)/data/test)
	$(ROB_G) data synth -o $(ROB)/data $(ROB_OPTS)

$(ROB)/augmented/manifest.json: $(ROB)/data/test/manifest.json $(call rob_force,$(ROB)/augmented)
	$(ROB_G) data augment $(ROB)/data/labeled -o $(ROB)/augmented --fraction $(ROB_FRACTION) \
	  --injection-fraction $(ROB_INJECTION) $(ROB_OPTS)

$(ROB)/rm-base/manifest.json: $(ROB)/data/test/manifest.json $(call rob_force,$(ROB)/rm-base)
	$(ROB_G) pretrain $(ROB)/data/labeled -o $(ROB)/rm-base --max-steps $(ROB_STEPS) --resume $(ROB_OPTS)

$(ROB)/rm-aug/manifest.json: $(ROB)/augmented/manifest.json $(call rob_force,$(ROB)/rm-aug)
	$(ROB_G) pretrain $(ROB)/augmented -o $(ROB)/rm-aug --max-steps $(ROB_STEPS) --resume $(ROB_OPTS)

$(ROB)/probe-raw/summary.json: $(ROB)/rm-base/manifest.json $(ROB)/rm-aug/manifest.json $(shell test -s $(ROB)/probe-raw/summary.json || echo rob-force)
	$(ROB_G) probe $(ROB)/data/test --model $(ROB)/rm-base --model $(ROB)/rm-aug -o $(ROB)/probe-raw \
	  --max-pairs $(ROB_PAIRS) --families $(ROB_RAW_FAMILIES) $(ROB_OPTS) -s prompt=$(ROB_PROMPT)+raw

$(ROB)/probe/summary.json: $(ROB)/probe-raw/summary.json $(shell test -s $(ROB)/probe/summary.json || echo rob-force)
	$(ROB_G) probe $(ROB)/data/test --model $(ROB)/rm-base --model $(ROB)/rm-aug -o $(ROB)/probe \
	  --max-pairs $(ROB_PAIRS) --baseline $(ROB)/probe-raw $(ROB_OPTS)

$(ROB)/evaluate/summary.json: $(ROB)/rm-base/manifest.json $(ROB)/rm-aug/manifest.json $(shell test -s $(ROB)/evaluate/summary.json || echo rob-force)
	$(ROB_G) evaluate $(ROB)/data/test --model $(ROB)/rm-base --model $(ROB)/rm-aug -o $(ROB)/evaluate $(ROB_OPTS)

# Every step's target, kept when make is interrupted (Ctrl-C, kill): GNU make deletes the target of an interrupted
# recipe unless it is listed here by name (a pattern only covers implicit rules), and a deleted manifest.json
# would leave an output that no rerun may resume.
.PRECIOUS: $(ROB)/data/test/manifest.json \
  $(ROB)/augmented/manifest.json \
  $(ROB)/rm-base/manifest.json \
  $(ROB)/rm-aug/manifest.json \
  $(ROB)/probe-raw/summary.json \
  $(ROB)/probe/summary.json \
  $(ROB)/evaluate/summary.json
.PHONY: robustness rob-force
rob-force:

robustness: setup $(ROB)/probe/summary.json $(ROB)/evaluate/summary.json
	@cat $(ROB)/probe-raw/report.md $(ROB)/probe/report.md $(ROB)/evaluate/report.md
