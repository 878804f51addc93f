#!/usr/bin/env python3
"""Verifies webhook deliveries with the `standardwebhooks` package (PyPI), an implementation of
the Standard Webhooks specification we did not write.

stdin: {"secrets": ["whsec_..."], "messages": [{"headers": {...}, "body": "<base64>"}]}
stdout (last line): for each message, for each secret, true when that secret verifies it.
"""
import base64
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

request = json.load(sys.stdin)
hooks = [Webhook(secret) for secret in request["secrets"]]
results = []
for message in request["messages"]:
    body = base64.b64decode(message["body"])
    row = []
    for hook in hooks:
        try:
            hook.verify(body, message["headers"])
            row.append(True)
        except WebhookVerificationError:
            row.append(False)
    results.append(row)
print(json.dumps(results))
