#!/usr/bin/env bash
# The statewise demo: the brief's four scenarios, then a team of AI agents on the offline
# `local` model (no key, no network), run end to end on one SQLite file.
#
#   bash examples/demo.sh [DB]        (default DB: demo.sqlite; it is deleted first)
#
# Expects `statewise` on PATH (the README's set-up does that) and the repository root as the
# working directory. Every command's failure stops the demo with a non-zero exit status.
set -euo pipefail

DB="${1:-demo.sqlite}"
EXAMPLES="examples"
WORKFLOWS=(order_processing content_approval product_onboarding support_routing)
# Each workflow NAME.yaml has its commands in NAME.py.
# support_triage.yaml runs AI agents only: statewise registers them itself, no module needed.
AGENTS=support_triage

# Rich sizes tables to the terminal; when the output is piped, give it room for the audit trail.
BOLD="" PLAIN=""
if [[ -t 1 ]]; then
  BOLD=$'\033[1m' PLAIN=$'\033[0m'
else
  export COLUMNS="${COLUMNS:-160}"
fi

header() {
  printf '\n%s== %s ==%s\n' "$BOLD" "$*" "$PLAIN"
}

rm -f "$DB" "$DB-wal" "$DB-shm" "$DB.lock"

header "Validate the workflow files (every problem would be reported as file:line:column)"
for name in "${WORKFLOWS[@]}"; do
  statewise validate "$EXAMPLES/$name.yaml" --commands "$EXAMPLES/$name.py"
done
statewise validate "$EXAMPLES/$AGENTS.yaml"

for name in "${WORKFLOWS[@]}"; do
  header "Run $name: $(wc -l < "$EXAMPLES/$name.items.jsonl" | tr -d ' ') items from $EXAMPLES/$name.items.jsonl"
  statewise run "$EXAMPLES/$name.yaml" \
    --items "$EXAMPLES/$name.items.jsonl" --commands "$EXAMPLES/$name.py" --db "$DB"
done

header "Run $AGENTS: $(wc -l < "$EXAMPLES/$AGENTS.items.jsonl" | tr -d ' ') inquiries, every stage an AI agent on the offline local model"
statewise run "$EXAMPLES/$AGENTS.yaml" --items "$EXAMPLES/$AGENTS.items.jsonl" --db "$DB"

header "Where every item is now: finished (done) or waiting for a person or a timer"
statewise status --db "$DB"

header "Held orders waiting for a fraud analyst"
statewise items --db "$DB" --workflow order_processing --status waiting

header "Audit trail of CNT-2018: brand check failed twice, two automatic revisions, then published"
statewise history CNT-2018 --db "$DB"

header "A fraud analyst approves held order ORD-10027; the order resumes"
statewise send ORD-10027 approve --data '{"reviewer": "dana"}' --actor dana --db "$DB"

header "More people act: a supplier, a support specialist, an editor"
statewise send PRD-3011 clarify --data '{"fields": {"brand": "Nordvik"}}' --actor supplier --db "$DB"
statewise send TCK-4019 resolve --data '{"agent": "sam", "csat": 5, "new_issue": true}' \
  --actor sam --db "$DB"
statewise send CNT-2010 approve --data '{"reviewer": "dana"}' --actor dana --db "$DB"

header "Audit trail of ORD-10027: fraud hold, approval by dana, parallel checks, a retried timeout"
statewise history ORD-10027 --db "$DB"

header "Audit trail of INQ-7006: classifier, two analysts at once, billing specialist, supervisor flags a chargeback threat"
statewise history INQ-7006 --db "$DB"

header "The supervisor's model call in the audit row: model, tokens, cost (0 on the local model)"
statewise history INQ-7006 --db "$DB" --format jsonl | grep '"command":"agent:supervisor"'

header "A support agent answers INQ-7006; the item is resolved"
statewise send INQ-7006 resolve --data '{"agent": "sam", "reply": "Duplicate charge refunded"}' \
  --actor sam --db "$DB"

header "Model usage of every agent, from the audit trail"
statewise costs --db "$DB"

header "Diagrams"
for name in "${WORKFLOWS[@]}" "$AGENTS"; do
  statewise graph "$EXAMPLES/$name.yaml" --format svg -o "demo-$name.svg"
done

header "order_processing as Mermaid, with live item counts (paste into any Mermaid viewer)"
statewise graph "$EXAMPLES/order_processing.yaml" --db "$DB"

header "Done"
echo "Database: $DB   Diagrams: $(printf 'demo-%s.svg ' "${WORKFLOWS[@]}" "$AGENTS")"
echo "Explore further: statewise items --db $DB --state human_review"
echo "                 statewise history PRD-3021 --db $DB"
echo "                 statewise history INQ-7015 --db $DB   (a specialist with no relevant answer)"
