# mlops.platform — the two commands a newcomer needs:
#   make platform   bring up the platform on the local default (offline cluster or Kind)
#   make test       the full gate: lint, sanity, unit tests, Molecule on the offline cluster
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
CLUSTER := roles/cluster/files/offline-cluster.sh
INVENTORY ?= inventories/local

.PHONY: help setup mlflow-env airflow-env platform test lint sanity units molecule cluster-build cluster-up cluster-down cluster-status build docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

setup:  ## install the pinned toolchain (.venv) and link the collection
	@scripts/setup.sh

mlflow-env: setup  ## install the pinned MLflow (.venv-mlflow) for the real-process tests
	@scripts/mlflow-env.sh >/dev/null

airflow-env: setup  ## install the pinned Airflow (.venv-airflow) that runs roles/processing/files/dags
	@roles/processing/files/airflow.sh env >/dev/null

platform: setup  ## converge playbooks/site.yml on $(INVENTORY) (default: local)
	ansible-playbook playbooks/site.yml -i $(INVENTORY)

test: setup  ## the gate: cluster up, lint, sanity, units, molecule; cluster down at the end
	@scripts/test.sh

lint: setup  ## yamllint, ansible-lint (production profile), ruff
	yamllint --strict .
	ansible-lint --profile production
	ruff check .

sanity: setup  ## ansible-test sanity (offline) on a copy of the collection
	@scripts/sanity.sh

units: setup  ## pytest unit tests
	python -m pytest -q tests/unit

molecule: setup  ## molecule test (default scenario) against the offline cluster
	molecule test -s default

cluster-build:  ## build the offline cluster's binaries into the cache
	@$(CLUSTER) build

cluster-up:  ## create or reuse the offline cluster
	@$(CLUSTER) up

cluster-down:  ## delete the offline cluster
	@$(CLUSTER) down

cluster-status:  ## show whether the offline cluster answers
	@$(CLUSTER) status

build: setup  ## build the collection tarball
	ansible-galaxy collection build --force

clean:  ## remove local build outputs (not the binary cache)
	rm -rf tests/output mlops-platform-*.tar.gz .pytest_cache .ruff_cache
