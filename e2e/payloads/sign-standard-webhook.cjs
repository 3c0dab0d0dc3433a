// Signs messages with the official Standard Webhooks library (npm `standardwebhooks`), so the e2e
// suite checks Ephemera's verifier against the reference signer instead of against itself.
// stdin: [{"secret": "whsec_...", "id": "msg_...", "timestamp": <unix seconds>, "payload": "<body>"}]
// stdout: one {"webhook-id", "webhook-timestamp", "webhook-signature"} object per message, in order.
"use strict";
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((m) => ({
    "webhook-id": m.id,
    "webhook-timestamp": String(m.timestamp),
    "webhook-signature": new Webhook(m.secret).sign(m.id, new Date(m.timestamp * 1000), m.payload),
  }));
  process.stdout.write(JSON.stringify(out));
});
