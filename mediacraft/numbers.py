"""Whole numbers from what a client sent: query strings, headers, form fields, JSON values.

int() refuses a text of more than 4,300 digits (a ValueError, so a 500 wherever nobody expected
one), and str.isdigit() passes digits that int() cannot read ("²"). These read ASCII digits
only, and never more of them than the number asked for can have."""

from django.utils.translation import gettext as _

from tasks.errors import InvalidParams

MAX_DIGITS = 18  # below 2**63: fits every integer column


def parse_digits(text, max_digits=MAX_DIGITS):
    """The number that text writes in ASCII digits (spaces around allowed), or None: not such a
    text, or more than max_digits digits without its leading zeros."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    text = text.lstrip("0") or "0"
    return int(text) if len(text) <= max_digits else None


def whole_number(value, field, low, high):
    """value (an int, or its digits as text) as an int from low to high, or InvalidParams naming
    the field, whatever was sent."""
    if isinstance(value, str):
        value = parse_digits(value, len(str(high)))
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParams(
            _("%(field)s must be a whole number from %(low)s to %(high)s.") % {"field": field, "low": low, "high": high},
            field,
        )
    return value


def row_id(ref):
    """A database id from an int or its digits, or None when it cannot be one."""
    if isinstance(ref, str):
        ref = parse_digits(ref)
    if isinstance(ref, bool) or not isinstance(ref, int) or not 0 < ref < 2**63:
        return None
    return ref
