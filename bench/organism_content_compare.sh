#!/usr/bin/env bash
# Content-aware steering (issue 16) next to baseline, tuned CMRM, sample ShiftDC and the QA-aware gate,
# on the shipped model organism's held-out cells, all through the CLI (docs/content-steering.md).
#
#   bash bench/organism_content_compare.sh [OUT_DIR] [MODEL]     # default runs/organism, the shipped organism
#
# Every vector file and probe is fitted on organism splits / training renders disjoint from the
# evaluation items. The last step writes the table with the strict metrics (answered as taught,
# complete refusal) from the per-item results: python bench/organism_content_table.py OUT/content_compare
set -euo pipefail
OUT=${1:-runs/organism}
ORG=${2:-$(steer organism path)}
TGA=${TGA:-runs/tga_artifacts/tga_rich_captions_guide_0_3.safetensors}
mkdir -p "$OUT"

# 1. calibration and gates
[ -f "$OUT/cmrm.safetensors" ] || steer calibrate --model "$ORG" --data organism:anchors --batch-size 32 --out "$OUT/cmrm.safetensors"
[ -f "$OUT/shiftdc.safetensors" ] || steer calibrate --model "$ORG" --data organism:anchors --batch-size 32 \
    --method shiftdc --safety-data organism:probe --out "$OUT/shiftdc.safetensors"
# the QA-aware gate of docs/results.md section 5 (requests + picture questions; no object 'make this' rows)
[ -f "$OUT/gate_data.jsonl" ] || python bench/organism_gate_data.py "$OUT/gate_data.jsonl"
[ -f "$OUT/gate_layer0_qa.safetensors" ] || steer probe --model "$ORG" --data "$OUT/gate_data.jsonl" --layers 0 --batch-size 32 \
    --out "$OUT/gate_layer0_qa.safetensors"
# the content gate: the same rows + harmful/benign object 'make this' on training renders; layer 1, so it gates layers 2-3
[ -f "$OUT/content_gate_data.jsonl" ] || python bench/organism_content_gate_data.py "$OUT/content_gate_data.jsonl"
[ -f "$OUT/gate_layer1_content.safetensors" ] || steer probe --model "$ORG" --data "$OUT/content_gate_data.jsonl" --layers 1 \
    --batch-size 32 --out "$OUT/gate_layer1_content.safetensors"

# the training-time comparator (bench/tga_organism.py; about 15 min on 2 free cores when missing)
[ -f "$TGA" ] || python bench/tga_organism.py --model "$ORG" --threads 1 --out runs/tga_organism.json \
    --artifacts "$(dirname "$TGA")"

# 2. one compare run
TUNED="alpha=1,positions=prompt,schedule=incremental"
steer compare --model "$ORG" \
  --variants "baseline;\
cmrm:$OUT/cmrm.safetensors@$TUNED,name=cmrm;\
shiftdc-sample:$OUT/shiftdc.safetensors@alpha=1,positions=prompt,schedule=incremental,name=shiftdc-sample;\
gated:$OUT/cmrm.safetensors:$OUT/gate_layer0_qa.safetensors@$TUNED,layers=1-3,name=gated-cmrm-qa-gate;\
caption-cmrm@alpha=1,name=caption-cmrm;\
caption-shiftdc:$OUT/shiftdc.safetensors@alpha=1,name=caption-shiftdc;\
caption-shiftdc:$OUT/shiftdc.safetensors@alpha=1,twin=both,name=caption-shiftdc-both;\
caption-shiftdc:$OUT/shiftdc.safetensors@alpha=1,twin=both,follow=0.5,name=caption-shiftdc-follow;\
refusal-add:$OUT/shiftdc.safetensors:$OUT/gate_layer0_qa.safetensors@alpha=1,layers=1-3,name=refusal-add-qa-gate;\
refusal-add:$OUT/shiftdc.safetensors:$OUT/gate_layer1_content.safetensors@alpha=1,layers=2-3,name=refusal-add-content-gate;\
tga:$TGA@name=tga" \
  --data organism:text-harmful,organism:text-benign,organism:image-harmful-text,organism:image-harmful-object,organism:image-benign-text,organism:image-benign-make,organism:image-benign-qa,organism:image-harmful-caption,organism:text-lookalike,organism:image-harmful-typed,organism:image-benign-typed \
  --batch-size 64 --max-new-tokens 24 --out "$OUT/content_compare" --no-progress "${@:3}"
python bench/organism_content_table.py "$OUT/content_compare"
