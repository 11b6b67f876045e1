from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from copytrail.ingest.isbn import find_isbns, normalize_isbn


def test_normalise_isbn10_and_isbn13():
    assert normalize_isbn("0-14-143951-3") == "9780141439518"
    assert normalize_isbn("978-0-14-143951-8") == "9780141439518"
    assert normalize_isbn("0 8044 2957 X") == "9780804429573"
    assert normalize_isbn("080442957x") == "9780804429573"
    assert normalize_isbn("979-10-90636-07-1") == "9791090636071"


def test_bad_checksums_and_junk_are_rejected():
    assert normalize_isbn("0-14-143951-4") is None
    assert normalize_isbn("9780141439519") is None
    assert normalize_isbn("1234567890123") is None  # not a 978/979 prefix
    assert normalize_isbn("") is None and normalize_isbn("ISBN") is None


def test_find_isbns_in_copyright_page_text():
    page = (
        "First published 1915.\nThis edition copyright (c) 2009.\n"
        "ISBN 0-553-21369-5\nISBN-13: 978-3-16-148410-0 (hardcover)\n"
        "Printed 9780306406157 on acid-free paper. Phone 0-14-143951-4 is not one.\n"
        "ISBN 0-14-143951-4 has a bad check digit.\n"
    )
    assert find_isbns(page) == ["9780553213690", "9783161484100", "9780306406157"]


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_every_valid_isbn10_maps_to_a_valid_isbn13(core):
    s = sum((10 - i) * int(c) for i, c in enumerate(core))
    check = (11 - s % 11) % 11
    isbn10 = core + ("X" if check == 10 else str(check))
    isbn13 = normalize_isbn(isbn10)
    assert isbn13 is not None and isbn13.startswith("978") and normalize_isbn(isbn13) == isbn13
    assert find_isbns(f"ISBN {isbn10}.") == [isbn13]
