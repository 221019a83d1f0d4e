#!/usr/bin/env bash
# Baseline vs CMRM (paper-literal and tuned) vs gated CMRM vs sample-level CMRM / ShiftDC vs TGA
# on the shipped model organism's held-out cells, all through the CLI (docs/results.md, section 5).
#
#   bash bench/organism_compare.sh [OUT_DIR]      # default runs/organism
#
# The TGA projector comes from bench/tga_organism.py (docs/tga.md); its command is
# rerun here when the artifact is missing (about 15 min on 2 free cores).
set -euo pipefail
OUT=${1:-runs/organism}
ORG=$(steer organism path)
TGA=${TGA:-runs/tga_artifacts/tga_rich_captions_guide_0_3.safetensors}
mkdir -p "$OUT"

# 1. calibration (anchors and probe are organism splits disjoint from the evaluation items)
[ -f "$OUT/cmrm.safetensors" ] || steer calibrate --model "$ORG" --data organism:anchors --batch-size 32 --out "$OUT/cmrm.safetensors"
[ -f "$OUT/shiftdc.safetensors" ] || steer calibrate --model "$ORG" --data organism:anchors --batch-size 32 \
    --method shiftdc --safety-data organism:probe --out "$OUT/shiftdc.safetensors"
# the gate reads layer 0, so it can gate layers 1-3
[ -f "$OUT/gate_layer0.safetensors" ] || steer probe --model "$ORG" --data organism:probe --layers 0 --batch-size 32 \
    --out "$OUT/gate_layer0.safetensors"
# a second gate that has also seen benign picture questions (training questions and renders only)
[ -f "$OUT/gate_data.jsonl" ] || python bench/organism_gate_data.py "$OUT/gate_data.jsonl"
[ -f "$OUT/gate_layer0_qa.safetensors" ] || steer probe --model "$ORG" --data "$OUT/gate_data.jsonl" --layers 0 --batch-size 32 \
    --out "$OUT/gate_layer0_qa.safetensors"
[ -f "$TGA" ] || python bench/tga_organism.py --model "$ORG" --threads 1 --out runs/tga_organism.json \
    --artifacts "$(dirname "$TGA")"

# 2. one compare run: 9 variants x 11 held-out cells (the typed-request image cells and the
#    text-only requests with never safety-tuned verbs are the last three)
TUNED="alpha=1,positions=prompt,schedule=incremental"
steer compare --model "$ORG" \
  --variants "baseline;\
cmrm:$OUT/cmrm.safetensors@alpha=1,positions=after_image,schedule=cumulative,name=cmrm-paper-literal;\
cmrm:$OUT/cmrm.safetensors@$TUNED,name=cmrm;\
cmrm:$OUT/cmrm.safetensors@$TUNED,layers=1-3,name=cmrm-layers-1-3;\
gated:$OUT/cmrm.safetensors:$OUT/gate_layer0.safetensors@$TUNED,layers=1-3,name=gated-cmrm-layers-1-3;\
gated:$OUT/cmrm.safetensors:$OUT/gate_layer0_qa.safetensors@$TUNED,layers=1-3,name=gated-cmrm-layers-1-3-qa-gate;\
cmrm-sample@$TUNED,name=cmrm-sample;\
shiftdc-sample:$OUT/shiftdc.safetensors@alpha=1,positions=prompt,schedule=incremental,name=shiftdc-sample;\
tga:$TGA@name=tga" \
  --data organism:text-harmful,organism:image-harmful-text,organism:image-harmful-object,organism:image-benign-text,organism:image-benign-make,organism:image-benign-qa,organism:image-harmful-caption,organism:text-lookalike,organism:image-harmful-typed,organism:image-benign-typed,organism:text-harmful-new-verb \
  --batch-size 64 --max-new-tokens 24 --out "$OUT/compare" "${@:2}"
