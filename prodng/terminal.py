"""What a container says never drives the operator's terminal.

Service output (logs, query rows, exec output) reaching a terminal has its control characters
shown as \\xNN, as journalctl and systemctl do: a service cannot set the title, write the
clipboard (OSC 52), move the cursor or overwrite a line with \\r. Newline and tab stay.
prodng's own lines are set apart by an attribute (bold) the escaped output can never produce.
"""

from __future__ import annotations

import re

# C0 but \t and \n, DEL, and C1 (U+0080-U+009F: a terminal may take U+009B as CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
BOLD, PLAIN = "\x1b[1m", "\x1b[0m"


def escape(text: str) -> str:
    """text with every control character but \\n and \\t as a visible \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def own_line(text: str) -> str:
    """One of prodng's own lines, for a terminal: escaped, then marked."""
    return f"{BOLD}{escape(text)}{PLAIN}"
