"""Runs scim2-tester's conformance checks against a running SCIM service provider.

Usage: conformance.py BASE_URL TOKEN
Prints one JSON object per check (status, title, resource type, reason) and a last line with
the counts; exits 1 when any check reports an ERROR (a broken MUST of RFC 7643/7644).
"""

import json
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


def main() -> int:
    base_url, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client)
    counts: dict[str, int] = {}
    for result in results:
        status = result.status.name
        counts[status] = counts.get(status, 0) + 1
        print(
            json.dumps(
                {
                    "status": status,
                    "title": result.title,
                    "resource_type": result.resource_type,
                    "tags": sorted(result.tags),
                    "reason": result.reason,
                }
            )
        )
    print(json.dumps({"counts": counts}))
    return 1 if any(r.status == Status.ERROR for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
