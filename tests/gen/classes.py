"""Which issue-8 class each dimension value exercises (for GAPS.md and KNOWN_GAPS)."""

from __future__ import annotations

FURIGANA = "furigana value holding a header word (タナカ, ヨシダ カナ) flips a list into a form"
FULLWIDTH = "full-width digits / hyphens in table cells not read as numbers"
HEADERS = "header forms: merged 2-row, line break, ①, half-width kana, repeated, English"
BLOCKS = "several blocks per sheet, transposed table, two rows per person"
SPLIT = "values split over cells (3x4 digits, digit per cell, 元号/年/月/日) or joined (記号・番号)"
NAMES = "names: hiragana given names, old kanji, place-name surnames"
BODY = "HTML tables and tab-separated rosters in mail bodies: one record per row"
MASKED = "masked values (******1234) under a number header"
LABELLED = (
    "labelled non-personal numbers passing the check digit (注文番号, Web会議ID, 予約番号); "
    "amounts and delivery dates beside names taken for birth dates"
)
TITLE = "insured numbers known only from the sheet/document title (被保険者一覧 + 番号)"
CORRESPONDENTS = "correspondents (signature, display names, 〇〇様) counted as names"
NUMBERS = "numbers and dates in other written forms (numeric cells, odd dashes, date forms)"
FILES = "file types / encodings"
NON_BIRTH = "dates that are not births (受付日, 交付年月日, 資格取得年月日) beside names"
PDF = "PDF tables (waits for the PDF reader)"
NUMBER_FORMS = (
    "number forms from independent mail: 4-4-4 cells under generic headers, heading-governed "
    "lists, card numbers in text, kanji 記号, kana headers, shipping numbers, card statistics"
)

ISSUE_CLASS: dict[tuple[str, str], str] = {
    ("name_form", "kana_column"): FURIGANA,
    ("name_form", "kana_only"): FURIGANA,
    ("name_form", "joined_kana"): SPLIT,
    ("name_form", "split"): SPLIT,
    ("name_pool", "kana_word"): FURIGANA,
    ("name_pool", "hiragana"): NAMES,
    ("name_pool", "old_kanji"): NAMES,
    ("name_pool", "place"): NAMES,
    ("number_form", "fullwidth"): FULLWIDTH,
    ("number_form", "fullwidth_hyphen"): FULLWIDTH,
    ("number_form", "separate_fullwidth"): FULLWIDTH,
    ("number_form", "joined_fullwidth"): FULLWIDTH,
    ("number_form", "split3"): SPLIT,
    ("number_form", "digit_cells"): SPLIT,
    ("number_form", "separate"): SPLIT,
    ("number_form", "joined"): SPLIT,
    ("number_form", "joined_edaban"): SPLIT,
    ("number_form", "numeric_lost_zero"): NUMBERS,
    ("number_form", "numeric"): NUMBERS,
    ("number_form", "odd_dash"): NUMBERS,
    ("number_form", "ideo_space"): NUMBERS,
    ("number_form", "dot"): NUMBERS,
    ("number_form", "space"): NUMBERS,
    ("number_form", "hyphen"): NUMBERS,
    ("date_form", "era_columns"): SPLIT,
    ("date_form", "split_columns"): SPLIT,
    ("date_form", "wareki_paren"): NUMBERS,
    ("date_form", "seireki_paren"): NUMBERS,
    ("date_form", "english"): NUMBERS,
    ("name_form", "with_dob"): SPLIT,
    ("layout", "merged_header"): HEADERS,
    ("layout", "header_linebreak"): HEADERS,
    ("layout", "circled_header"): HEADERS,
    ("layout", "halfwidth_kana_header"): HEADERS,
    ("layout", "english_header"): HEADERS,
    ("layout", "repeated_header"): HEADERS,
    ("layout", "stats_above"): BLOCKS,
    ("layout", "side_by_side"): BLOCKS,
    ("layout", "transposed"): BLOCKS,
    ("layout", "two_rows"): BLOCKS,
    ("layout", "form"): BLOCKS,
    ("file_type", "html_body"): BODY,
    ("file_type", "tsv_body"): BODY,
    ("file_type", "html_attach"): BODY,
    ("file_type", "pdf"): PDF,
    ("content", "neg_masked"): MASKED,
    ("content", "neg_order"): LABELLED,
    ("content", "neg_webid"): LABELLED,
    ("content", "neg_reservation"): LABELLED,
    ("content", "title_bango"): TITLE,
    ("content", "health"): SPLIT,
    ("mail", "letter_names"): CORRESPONDENTS,
    ("content", "neg_receipts"): NON_BIRTH,
    ("content", "neg_shipping"): NUMBER_FORMS,
    ("content", "neg_card_stats"): NUMBER_FORMS,
    ("wrap", "zip"): FILES,
}
for _form in (
    "wareki_kanji",
    "wareki_padded",
    "short_dot",
    "short_dot2",
    "gannen",
    "kanji_numerals",
    "fullwidth_short",
    "fullwidth_kanji",
    "ligature",
    "iso_slash",
    "slash_nopad",
    "iso_hyphen",
    "seireki_kanji",
    "yyyymmdd",
    "era_code",
    "excel_date",
    "excel_era_format",
    "excel_builtin_era",
):
    ISSUE_CLASS.setdefault(("date_form", _form), NUMBERS)
for _ft in ("xls", "csv_utf8", "csv_utf8sig", "csv_cp932", "csv_eucjp", "docx"):
    ISSUE_CLASS.setdefault(("file_type", _ft), FILES)
