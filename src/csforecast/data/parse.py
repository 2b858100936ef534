"""How a value as found in a source becomes a value of the contract's type: one rule, used by the loader
(`Source.table`) and by validation, so validation reports exactly the values the loader cannot read.

Every rule gives NULL for a value it cannot read and never raises, whatever the source holds; validation then
reports a value that was there (not NULL) but reads as NULL. The engine is DuckDB (see `sources`).

- text is read without surrounding spaces (`"A00048 "` is `A00048`), and text that is only spaces is missing
  (NULL), whatever the column's type; so is the text a database client writes for a missing value
  (`NULL_TEXTS`: `NULL` from SQL clients' exports, `\\N` from MySQL's and Hive's), spaces around it or not
  (a fixed-width export pads it: `" NULL "`). In a column whose type is not text, so is the text spreadsheets and
  data tools write for a missing value (`NO_VALUE_WORDS`: `N/A`, `#N/A`, `NA`, `NaN`, `None`, …).
- string: any scalar, as text (a whole number in a float column as the integer: `17.0` is `17`, as an integer
  ID column with gaps that pandas wrote as floats means it); in a column of levels (`Column.levels`), a level written another way (case,
  spaces and punctuation aside: `NPS`, `Exec Meeting`, `Cross-Sell`) is the level; in a column of names read in
  one spelling (`Column.one_spelling`: a usage metric), the name in lower case with words joined by `_`
  (`Active Users` is `active_users`).
- float: a finite number (text is read with DuckDB's number syntax: `1234.5`, `-3`, `1e5`; not `1,5`, `NaN`
  or `inf`). With the table's declared `number_format` (the number 1234.56 written the source's way:
  `1,234.56`, `1.234,56`, `1 234,56`, `1'234.56`, `1234,56`), text is read in that format instead: a currency
  sign ($ € £ ¥) before or after, spaces, a minus sign or accounting parentheses for a negative (`(1,234.00)`).
  Text in that format is read in it (`1.234` is 1234 in `1.234,56`), and text that is not is still read in
  number syntax (`16.0`, which `1.234,56` cannot have written), as with `date_format`.
- bool: a boolean, text DuckDB reads as one (`true`/`false`, `t`/`f`, `1`/`0`, `yes`/`no`), or the number 1 or 0
  (`1.0`/`0.0` too: how pandas writes a boolean column with gaps), as a number or as text.
- date: a date; a timestamp's date (in UTC; a Parquet column's zone is applied as it is read, `sources`); text as
  `YYYY-MM-DD` or `YYYY/MM/DD` (a time of day after it is ignored), or in the table's declared `date_format`
  (strftime codes such as `%d/%m/%Y`; a time of day after the date is accepted and ignored too). With a declared
  format, text that does not match it is still read as `YYYY-MM-DD` (which no other format can be mistaken for), so
  one setting covers a table whose date columns come from different systems. A spreadsheet's day number
  (`SPREADSHEET_DAYS`), as a number or as text, is the date it stands for (`spreadsheet_date`): what a date column
  formatted as numbers saves.
"""
from __future__ import annotations

import datetime
import re

import ibis
import ibis.expr.datatypes as dt

# a time of day that may follow the date in the declared format (ignored once read)
_TIME_SUFFIXES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", "T%H:%M", "T%H:%M:%S", "T%H:%M:%S.%f",
                  " %H:%M:%S%z", "T%H:%M:%S%z", "T%H:%M:%SZ", "T%H:%M:%S.%fZ",
                  " %I:%M %p", " %I:%M:%S %p")     # 1/5/2024 12:00:00 AM: Excel's and SQL Server's US text
_TIME_CODES = ("%H", "%I", "%M", "%S", "%f", "%p", "%z", "%Z", "%T", "%X", "%c")

IBIS_TYPES = {"string": "string", "date": "date", "float": "float64", "int": "int64", "bool": "boolean"}

# how exports write a missing value as text: SQL clients' "Save results as CSV" (`NULL`, `null`), MySQL's
# `SELECT … INTO OUTFILE` and Hive (`\N`). Not `NA`, `N/A` or `None`: a region, a level or a name can be those
# (NO_VALUE_WORDS: missing only in a column whose type is not text)
NULL_TEXTS = ("NULL", "null", "\\N")
# text that holds no value: blank, or one of NULL_TEXTS, spaces around it or not. Anchored at the start, so that
# RE2 and Java give up at a value's first character that is not one of these (trimming first scans every value)
_NULL_TEXT = rf"^\s*(?:{'|'.join(re.escape(t) for t in NULL_TEXTS)})\s*$"
_NO_VALUE = rf"^\s*(?:{'|'.join(re.escape(t) for t in NULL_TEXTS)})?\s*$"
# what spreadsheets and data tools write for a missing number, date or true/false (Excel's #N/A, pandas's and R's
# NaN and NA, Python's None): missing where the contract's type is not text. Not in a text column, where `NA` may be
# a value (North America) and `None` a churn reason
NO_VALUE_WORDS = ("N/A", "n/a", "NA", "#N/A", "#N/A N/A", "#NA", "<NA>", "NaN", "nan", "-NaN", "-nan", "None")
_NO_VALUE_WORD = rf"^\s*(?:{'|'.join(re.escape(t) for t in NO_VALUE_WORDS)})\s*$"

# the date formats exports commonly write, tried (by validation) on text that does not read as YYYY-MM-DD so the
# error can name the `date_format` to declare; a guess is only a hint: nothing is read in a format not declared
COMMON_DATE_FORMATS = ("%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y", "%Y/%m/%d", "%Y.%m.%d",
                       "%Y%m%d", "%d %b %Y", "%b %d, %Y", "%d-%b-%Y", "%m/%d/%y", "%d/%m/%y", "%d.%m.%y")
PLAUSIBLE_YEARS = (1900, 2199)   # a guess must give these: "%Y" also reads "10/11/21" (as the year 21)
# how a number may be written for people, as declared: the number 1234.56 in the source's way (number_format)
NUMBER_FORMATS = ("1,234.56", "1.234,56", "1 234,56", "1'234.56", "1234.56", "1234,56")
_CURRENCY = "[$€£¥]"
_SPACES = " \u00a0\u202f"     # a space, a no-break space, a narrow no-break space (French thousands)
_SPACE = f"[{_SPACES}]"
# text a number was written in for people: a currency sign, thousands separators, a decimal comma
_FORMATTED_NUMBER = rf"^\(?[+-]?{_CURRENCY}?{_SPACE}*[+-]?[0-9][0-9.,'{_SPACES}]*{_CURRENCY}?\)?$"
# a date as YYYY-MM-DD (or YYYY/MM/DD), and a time of day after it: the date is the first group. The engines' own
# casts differ beyond it (Spark's reads `2024`, `2024-01`, `+2024-01-05` and `45292`, the year 45292; DuckDB's
# reads `-2024-01-05`, a date BC), so only the date this pattern finds is cast, and both read the same text
_ISO_DATE = (r"^([0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2})"
             r"(?:[T ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?: ?(?:Z|UTC|[+-][0-9]{2}(?::?[0-9]{2})?))?)?$")
# a date a spreadsheet saved as the number it keeps it as, in days since SPREADSHEET_DAY_ZERO (Excel's 1900 date
# system, LibreOffice and Google Sheets; a fraction is the time of day). Read only within SPREADSHEET_DAYS,
# 1980-01-01 to 2099-12-31: numbers there mean nothing else in a date column (a count of days since 1970 stays
# below 29221 until 2050; YYYYMMDD has 8 digits)
SPREADSHEET_DAY_ZERO = datetime.date(1899, 12, 30)
SPREADSHEET_DAYS = (29221, 73050)
DAY_NUMBER = r"^[1-9][0-9]{4}(?:\.[0-9]+)?$"   # five digits, a fraction or not (trimmed text)


@ibis.udf.scalar.builtin(name="try_strptime")
def _try_strptime(value: str, fmt: str) -> datetime.datetime:  # DuckDB: NULL when value does not match fmt
    ...


def date_formats(date_format: str) -> list[str]:
    """The strptime formats tried for a declared `date_format`: the format itself, then the format followed
    by a time of day (unless the format already has time codes)."""
    if any(code in date_format for code in _TIME_CODES):
        return [date_format]
    return [date_format + suffix for suffix in _TIME_SUFFIXES]


_NOT_ALNUM = r"[^0-9a-z]"


def squashed(name: str) -> str:
    """`name` with case, spaces and punctuation aside: "Account ID", "account-id", "AccountId" and "ACCOUNT_ID"
    are all ``accountid``. How a name or a level of the contract is recognised when written another way."""
    return re.sub(_NOT_ALNUM, "", name.casefold())


def as_level(text: ibis.StringValue, levels: tuple[str, ...]) -> ibis.StringValue:
    """`text` as one of `levels` when it is a level written another way (:func:`squashed`: "NPS" is nps, "Exec
    Meeting" exec_meeting); other text as it is (validation reports it)."""
    squash = text.lower().re_replace(_NOT_ALNUM, "")
    return ibis.cases((text.isin(levels), text), *[(squash == squashed(v), v) for v in levels], else_=text)


def _whole(x: ibis.FloatingValue) -> ibis.BooleanValue:
    """Whether a float is a whole number an int64 holds exactly (|x| < 2^53). Not ``x == x.round()``: Ibis rounds
    to a BIGINT, which a large value (1e20) cannot be cast to, an error at run time rather than NULL."""
    return (x % 1 == 0) & (x.abs() < 2.0 ** 53)


def one_spelling(text: ibis.StringValue) -> ibis.StringValue:
    """`text` in one spelling: lower case, each run of characters other than letters and digits one ``_``, none at
    the ends ("Active Users", "active-users" and "ACTIVE_USERS" are all active_users); text without a letter or a
    digit as it is. How a name a source may write several ways (a usage metric: `Column.one_spelling`) is read as
    one name, the name the features are called by."""
    spelled = text.lower().re_replace(r"[^\p{L}\p{N}]+", "_").re_replace(r"^_+|_+$", "")
    return ibis.ifelse(spelled == "", text, spelled)


def respelled(text: ibis.StringValue) -> ibis.BooleanValue:
    """Whether :func:`one_spelling` changes `text`. The one rule behind validation's ``respelled_names`` and the
    columns a source reads through :func:`one_spelling`."""
    return text.notnull() & (one_spelling(text) != text)


def spells_a_level(text: ibis.StringValue, levels: tuple[str, ...]) -> ibis.BooleanValue:
    """Whether `text` is one of `levels` written another way: not a level as it is, a level once
    :func:`as_level` reads it. The one rule behind validation's ``spelled_levels`` and the columns a source
    reads through :func:`as_level`."""
    return ~text.isin(levels) & as_level(text, levels).isin(levels)


def number_marks(number_format: str) -> tuple[str, str]:
    """The (thousands separator, decimal mark) of `number_format`, the number 1234.56 as a source writes it
    ("1,234.56": (",", "."); "1 234,56": (" ", ","); "1234,56": ("", ",")). Raises ValueError for anything else."""
    m = re.fullmatch(r"1([,.' ]?)234([.,])56", number_format)
    if m is None or m.group(1) == m.group(2):
        raise ValueError(f"number_format {number_format!r} is not the number 1234.56 written with a decimal mark "
                         f"and, if any, a thousands separator (one of {', '.join(NUMBER_FORMATS)})")
    return m.group(1), m.group(2)


def number_in_format(text: ibis.StringValue, number_format: str) -> ibis.FloatingValue:
    """`text` read as a number written in `number_format` (:func:`number_marks`; a currency sign before or after,
    spaces, a minus sign or parentheses for a negative); NULL when it does not match the format."""
    thousands, decimal = number_marks(number_format)
    sep = _SPACE if thousands == " " else re.escape(thousands)
    digits = rf"([0-9]{{1,3}}({sep}[0-9]{{3}})+|[0-9]+)" if thousands else "[0-9]+"
    amount = rf"{_SPACE}*{_CURRENCY}?{_SPACE}*{digits}({re.escape(decimal)}[0-9]+)?{_SPACE}*{_CURRENCY}?{_SPACE}*"
    written = rf"^(-?{_SPACE}*{_CURRENCY}?{_SPACE}*-?{amount}|\({amount}\))$"
    plain = text.re_replace(rf"[^0-9{re.escape(decimal)}]", "")
    v = (plain.replace(decimal, ".") if decimal != "." else plain).try_cast("float64")
    negative = text.contains("-") | text.startswith("(")
    matches = text.re_search(written) & ~text.re_search("-.*-")
    return ibis.ifelse(matches, ibis.ifelse(negative, -v, v), ibis.null().cast("float64"))


def trimmed(text: ibis.StringValue) -> ibis.StringValue:
    """`text` without surrounding white space (``_PADDING``: no-break and zero-width spaces too), the same on every
    engine. Not Ibis's ``strip()``: on Spark it trims the characters of ``string.whitespace`` written into Spark
    SQL, where ``\\v`` and ``\\f`` become the letters v and f ("verbal" came out "erbal")."""
    return text.re_replace(_PADDING, "")


# white space as padding: ASCII white space (\s on both engines' regex dialects, RE2 and Java, is ASCII only), and
# the spaces that copying from a web page or a spreadsheet leaves, which look like nothing or like a space: a
# no-break space, a narrow no-break space, a zero-width space and a byte-order mark
_INVISIBLE = "\u00a0\u202f\u200b\ufeff"
_PADDING = rf"^[\s{_INVISIBLE}]+|[\s{_INVISIBLE}]+$"


def reads_as_date_format(text: ibis.StringValue, date_format: str) -> ibis.BooleanValue:
    """Whether `text` reads as a date in `date_format` (a time of day after it accepted, as the loader does)
    with a year in ``PLAUSIBLE_YEARS``. For guessing the format of a column (``COMMON_DATE_FORMATS``)."""
    d = ibis.coalesce(*[_try_strptime(trimmed(text), f).cast("date") for f in date_formats(date_format)])
    return d.notnull() & d.year().between(*PLAUSIBLE_YEARS)


def looks_like_formatted_number(text: ibis.StringValue) -> ibis.BooleanValue:
    """Whether `text` is a number written for people (``$9,529.96``, ``1.234,5``, ``12 000 €``): digits with a
    currency sign, thousands separators or a decimal comma, which the number syntax does not read."""
    return trimmed(text).re_search(_FORMATTED_NUMBER)


def readable(found: dt.DataType, logical: str) -> bool:
    """Whether a column of engine type `found` can hold values of the contract's `logical` type at all (a
    list or a struct cannot); False means every value of the column is unreadable."""
    if found.is_null() or (found.is_unknown() and 'kind="NULL"' in repr(found)):   # DuckDB's NULL type
        return True
    if logical == "string":
        return found.is_string() or found.is_numeric() or found.is_boolean() or found.is_temporal() \
            or found.is_uuid()
    if logical in ("float", "int"):
        return found.is_string() or found.is_numeric() or found.is_boolean()
    if logical == "bool":
        return found.is_string() or found.is_boolean() or found.is_numeric()
    if logical == "date":   # numbers: a spreadsheet's day numbers (parse.spreadsheet_date)
        return found.is_string() or found.is_date() or found.is_timestamp() or found.is_numeric()
    raise ValueError(f"unknown logical type {logical!r}")


def present(x: ibis.Value, logical: str = "string") -> ibis.BooleanValue:
    """Whether a value of a column of the contract's ``logical`` type is there: not NULL and, for text, neither
    only spaces nor one of `NULL_TEXTS` (which every rule reads as missing), nor, unless the column is text, one
    of `NO_VALUE_WORDS`."""
    if not x.type().is_string():
        return x.notnull()
    there = x.notnull() & ~x.re_search(_NO_VALUE)
    return there if logical == "string" else there & ~no_value_word(x)


def _one_of(x: ibis.StringValue, texts: tuple[str, ...], pattern: str) -> ibis.BooleanValue:
    """Whether text is one of ``texts``, spaces around it or not (``pattern``: the texts so, anchored)."""
    # the exact texts by one comparison, and the pattern only on text that begins with white space (or another
    # character that sorts before "!", on both engines) or ends in a space or a tab: searching every value cost
    # ~4× as much as the exact match, taking the first and last characters to test them ~3×
    edge_space = (x < "!") | x.endswith(" ") | x.endswith("\t")
    return ibis.cases((x.isin(texts), True), (edge_space, x.re_search(pattern)), else_=False)


def null_text(x: ibis.StringValue) -> ibis.BooleanValue:
    """Whether text is one of `NULL_TEXTS`, spaces around it or not: a missing value as a database client writes
    it (a fixed-width export pads it to the column's width)."""
    return _one_of(x, NULL_TEXTS, _NULL_TEXT)


def no_value_word(x: ibis.StringValue) -> ibis.BooleanValue:
    """Whether text is one of `NO_VALUE_WORDS`, spaces around it or not: a missing number, date or true/false as
    a spreadsheet or a data tool writes it (:func:`read_as` reads none of them as a value)."""
    return _one_of(x, NO_VALUE_WORDS, _NO_VALUE_WORD)


def padded(x: ibis.StringValue) -> ibis.BooleanValue:
    """Whether text has surrounding spaces or is blank."""
    return x.notnull() & ((trimmed(x) != x) | (x == ""))


def rewritten(x: ibis.StringValue) -> ibis.BooleanValue:
    """Whether :func:`read_as` changes a value of a string column: :func:`padded` or :func:`null_text` (a column
    with none is read as it is, without the cost of trimming every row). A padded ``NULL`` is padded, so only the
    exact texts are looked for here."""
    return padded(x) | x.isin(NULL_TEXTS)


def read_as(x: ibis.Value, logical: str, date_format: str | None = None, *, trim: bool = True,
            levels: tuple[str, ...] = (), number_format: str | None = None, respell: bool = False) -> ibis.Value:
    """`x` as the contract's `logical` type ("string", "float", "int", "bool", "date"); NULL where a value
    cannot be read (see the module docstring). Never raises at run time. ``trim=False``: the caller knows that no
    text of a string column is :func:`rewritten`, and the values are taken as they are (the same values, without
    the cost of trimming every row of a large table). ``levels``: the values a string column takes; one written
    another way is read as the level (:func:`as_level`). ``number_format``: how text numbers are written
    (:func:`number_in_format`). ``respell``: a string column's text is read in :func:`one_spelling`."""
    found = x.type()
    target = IBIS_TYPES[logical]
    if found.is_null() or not readable(found, logical):
        return ibis.null().cast(target)
    if logical == "date" and found.is_string() and not date_format:
        # a date as most exports write it, 2024-01-05, is cast as it is: the pattern, trimming and the other ways
        # of writing a date only for the rest (on every value they made validating a date column ~50 % slower)
        as_written = x.like("____-__-__") & (x >= "0") & (x < ":")   # ":" sorts after "9": a digit first, no sign
        return ibis.ifelse(as_written, x.try_cast("date"), _date_from_text(trimmed(x).nullif("")))
    if found.is_string() and (trim or logical != "string"):
        # an ID padded by a spreadsheet or a CHAR(n) column ("A00048 ") is the same ID; a blank cell is missing,
        # and so is a client's NULL
        x = trimmed(x).nullif("")
    if logical == "string":
        if found.is_floating():
            # a whole number in a float column is written as the integer (17, not 17.0): an integer ID column with
            # gaps that pandas wrote as floats names the same IDs as the integers another table holds
            text = ibis.ifelse(_whole(x), x.cast("int64").cast("string"), x.cast("string"))
        else:
            text = x if found.is_string() else x.cast("string")
        if found.is_string() and trim:   # a client's NULL (null_text); in a typed column it reads as NULL anyway
            text = ibis.ifelse(x.isin(NULL_TEXTS), ibis.null().cast("string"), text)   # x is trimmed
        text = one_spelling(text) if respell else text
        return as_level(text, levels) if levels else text
    if logical in ("float", "int"):
        if found.is_string():
            v = x.try_cast("float64")
            v = ibis.coalesce(number_in_format(x, number_format), v) if number_format else v
        else:
            v = x.cast("float64")
        v = ibis.ifelse(v.isnan() | v.isinf(), ibis.null().cast("float64"), v)
        if logical == "int":
            return ibis.ifelse(_whole(v), v, ibis.null().cast("float64")).cast("int64")
        return v
    if logical == "bool":
        if found.is_boolean():
            return x
        if found.is_numeric():   # 1 and 0, also as floats: how pandas writes a boolean column with gaps
            return _one_or_zero(x)
        return ibis.coalesce(x.try_cast("boolean"), _one_or_zero(x.try_cast("float64")))
    # date
    if found.is_date():
        return x
    if found.is_timestamp():
        return x.cast("date")
    if found.is_floating():
        return spreadsheet_date(x)
    if found.is_integer():   # day numbers, or digits the declared format reads (20240131 as %Y%m%d)
        x = x.cast("string")
    declared = [_try_strptime(x, f).cast("date") for f in date_formats(date_format)] if date_format else []
    return ibis.coalesce(*declared, _date_from_text(x))


def _one_or_zero(x: ibis.NumericValue) -> ibis.BooleanValue:
    """True for 1, False for 0, NULL for any other number."""
    return ibis.cases((x == 1, True), (x == 0, False), else_=ibis.null().cast("boolean"))


def _date_from_text(x: ibis.StringValue) -> ibis.DateValue:
    """Trimmed text as a date: ``YYYY-MM-DD`` or ``YYYY/MM/DD`` (a time of day after it ignored), else a
    spreadsheet's day number (:func:`spreadsheet_date`); NULL for anything else."""
    return ibis.coalesce(x.re_extract(_ISO_DATE, 1).nullif("").replace("/", "-").try_cast("date"), spreadsheet_date(x))


def spreadsheet_date(x: ibis.Value) -> ibis.DateValue:
    """The date a spreadsheet's day number stands for (45292 is 2024-01-01; 45292.75, 18:00 that day), for a
    number or text that is one within ``SPREADSHEET_DAYS``; NULL for anything else."""
    if x.type().is_string():
        x = ibis.ifelse(x.re_search(DAY_NUMBER), x.try_cast("float64"), ibis.null().cast("float64"))
    day = ibis.ifelse(x.between(*SPREADSHEET_DAYS), x.floor().cast("int64"), ibis.null().cast("int64"))
    # as a timestamp: DuckDB adds days to a date as a timestamp, which Ibis types as a date (and so will not cast)
    return (ibis.literal(SPREADSHEET_DAY_ZERO).cast("timestamp") + day.as_interval("D")).date()
