"""The ordering benchmark's reference: orders posted one after another on one requests.Session,
nothing else. Imported by the benchmark to time the loop alone, and run as a script of its own
to time the same job as a process, start-up included, as resellctl is timed:

    python bench/_bare_order.py API_URL USERNAME PASSWORD_FILE TARIFF FIRST_REMOTEID QUANTITY
"""

import sys
import time

import requests


def bare_loop(url, username, password, tariff, first_remoteid, quantity):
    """``quantity`` vds orders with remoteids from ``first_remoteid``; the seconds they took."""
    session = requests.Session()
    start = time.perf_counter()
    for n in range(quantity):
        answer = session.post(url, timeout=30, data={
            "func": "vds.order.param", "out": "json", "authinfo": f"{username}:{password}",
            "pricelist": tariff, "period": 1, "remoteid": first_remoteid + n, "sok": "ok",
            "skipbasket": "on", "clicked_button": "finish"})
        if "id" not in answer.json()["doc"]:
            sys.exit(f"the bare loop's order was refused: {answer.text}")
    seconds = time.perf_counter() - start
    session.close()
    return seconds


if __name__ == "__main__":
    url, username, password_file, tariff, first, quantity = sys.argv[1:]
    with open(password_file) as stream:
        password = stream.readline().strip()
    bare_loop(url, username, password, tariff, int(first), int(quantity))
