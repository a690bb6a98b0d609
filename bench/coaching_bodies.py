"""Writes /get-coaching request bodies for bench/coaching.sh, one JSON
document a line: 50-message conversations (inbound and outbound in turn,
90 s apart), each a different rotation of the same realistic lines so the
server cannot answer from a cache.   python3 coaching_bodies.py OUT [N]"""
import json
import sys
import time

LINES = [
    "Hi! We saw the listing on 5th street, is it still available?",
    "Yes it is! Would you like to see it this week?",
    "Maybe. We're relocating for a new job and need a 3 bedroom house near downtown.",
    "Great, what price range are you comfortable with?",
    "Our budget is around $450k but honestly everything looks too expensive right now.",
    "I understand. Have you talked to a lender yet?",
    "Not yet, rates are too high and we're a bit nervous about the monthly payment.",
    "That's fair. I can introduce you to a lender who can run the numbers.",
    "That would be really helpful, thanks! My wife wants to see the yard too.",
    "Of course. How about Saturday at 10 or Sunday at 2?",
]


def main():
    out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100
    start = int(time.time() * 1000) - 50 * 90000 - 600000
    with open(out, "w") as f:
        for k in range(n):
            msgs = [{"id": i + 1, "direction": "outbound" if i % 2 else "inbound", "channel": "sms",
                     "body": LINES[(i + k) % len(LINES)], "at": start + i * 90000} for i in range(50)]
            f.write(json.dumps({"messages": msgs, "timezone": "America/Los_Angeles"}) + "\n")


if __name__ == "__main__":
    main()
