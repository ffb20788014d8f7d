# Two commands on a fresh machine: `make run` (the example pipeline) and `make test` (the test suite).
# Both create .venv and install the pinned dependencies when needed, and bedtools through apt when root.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
CORES ?= $(shell nproc)
WHEELS := $(wildcard /opt/wheels)
FIND_LINKS := $(if $(WHEELS),--find-links $(WHEELS),)

.PHONY: setup bedtools run test lint report bench gpu-check clean

$(STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(FIND_LINKS) -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $@

bedtools:
	@command -v bedtools >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bedtools; \
	  else \
	    echo "bedtools is missing: install it (Debian/Ubuntu: sudo apt-get install bedtools; conda: conda install -c bioconda bedtools) and rerun."; exit 1; \
	  fi; }

setup: $(STAMP) bedtools

run: setup
	$(VENV)/bin/snakemake --profile profiles/default --cores $(CORES)

test: setup
	$(VENV)/bin/python -m pytest workflow_tests -m "not scale"

lint: setup
	$(VENV)/bin/snakemake --lint

report: setup
	$(VENV)/bin/snakemake --profile profiles/default --cores $(CORES) --report results/report.html

# Speed, memory and accuracy numbers (not timed tests): each script prints its numbers; see README "Benchmarks".
# (bench_criterion is the model issue's done-when: scMVP and every baseline, five seeds, three datasets; hours)
# (the quick clustering table caps scVI/MultiVI at 50 epochs for time; the workflow benchmark,
# bench/scicar_benchmark.yaml, trains them with their scvi-tools defaults)
bench: setup
	$(PY) -m pytest workflow_tests -m scale -s
	$(PY) bench/bench_model.py --cells 1000 10000 50000 --epochs 1 --threads 1
	$(PY) bench/bench_scicar.py --seeds 0 1 2 3 4 --ablations --threads 1
	$(PY) bench/bench_criterion.py --datasets example:1 tissue:6 scicar --seeds 0 1 2 3 4 --jobs 2 --out bench_results/criterion.tsv
	$(PY) bench/bench_clustering_scicar.py --out bench_results/scicar_clustering.tsv --scvi-max-epochs 50 --multivi-max-epochs 50
	$(PY) bench/bench_cre.py
	$(PY) bench/bench_pipeline.py --cells 10000 20000 50000 --cores $(CORES)

# The CUDA path end to end (train, kill + resume, impute, compare with the CPU); says so and exits 0 without CUDA.
gpu-check: setup
	$(PY) bench/gpu_check.py

clean:
	rm -rf results .snakemake
