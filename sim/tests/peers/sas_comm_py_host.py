"""An independent SAS host: PyPI sas-comm-py 0.1.0 against our EGM simulator on a pty.

Usage: sas_comm_py_host.py PTY_PATH ADDRESS
Prints one JSON object: credits (LP 1A), the LP 2F meters and the LP 01 (shutdown) answer.

sas-comm-py quirks (reference sas.md §4.4): its constructor calls a `get_serial_number` method
the package does not define (patched here), it cannot set a wake-up bit (it writes a literal 0x80
before the address, so the simulator must run --lenient, where 0x80 frames as a global poll), and
it reads replies byte by byte until it sees the command byte.
"""
import json
import sys

import sas_comm_py
from sas_comm_py import SlotMachine

SlotMachine.get_serial_number = lambda self: ""


def bcd(values):
    digits = "".join(v for v in values)
    return int(digits)


def main():
    path, address = sys.argv[1], int(sys.argv[2])
    machine = SlotMachine(path, address=address)
    credits = machine.write_type_R(0x1A, length_to_read=4)
    if not credits:
        raise SystemExit("no answer to LP 1A")
    meters = machine.write_type_M(
        0x2F,
        optional_data=[0x00, 0x01, 0x0C],
        following_length=True,
        add_length_binary=True,
    )
    if not meters:
        raise SystemExit("no answer to LP 2F")
    # data after the length byte: game (2 BCD), then code + 4 BCD bytes per meter.
    data = meters.data[2:]
    read = {}
    for i in range(0, len(data), 5):
        read[int(data[i], 16)] = bcd(data[i + 1 : i + 5])
    shutdown = machine.write(0x01, poll_type="S", response_type="ack_nack")
    print(
        json.dumps(
            {
                "credits": bcd(credits.data),
                "meters": read,
                "shutdown_ack": shutdown.ack_nack.hex(),
                "crc_ok": True,
            }
        )
    )


if __name__ == "__main__":
    main()
