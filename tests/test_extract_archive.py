"""Zip archives: cp932 names, nesting, bombs, encryption, corruption."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib

import openpyxl
import pyzipper

from dlp_gateway.extract.archive import member_name
from dlp_gateway.extract.files import extract_file
from dlp_gateway.extract.units import Limits, Skipped, TableUnit, TextUnit, Unscannable


def run(name: str, data: bytes, limits: Limits | None = None) -> list:
    return list(extract_file(name, data, limits or Limits()))


def xlsx_bytes() -> bytes:
    wb = openpyxl.Workbook()
    wb.active.append(["氏名", "被保険者番号"])
    wb.active.append(["山田太郎", "0000012345"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


class Cp932Info(zipfile.ZipInfo):
    """A member whose name is stored as raw cp932 bytes without the UTF-8 flag."""

    def _encodeFilenameFlags(self):  # zipfile's hook
        return self.filename.encode("cp437"), self.flag_bits


def zip_of(members: dict[str, bytes], cp932_names: bool = False,
           compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in members.items():
            if cp932_names:
                info = Cp932Info(name.encode("cp932").decode("cp437"))
                info.compress_type = compression
                zf.writestr(info, data)
            else:
                zf.writestr(name, data)
    return out.getvalue()


def test_cp932_member_names_without_utf8_flag() -> None:
    members = {"介護/R4介護認定者.xlsx": xlsx_bytes(), "メモ.txt": "個人番号一覧".encode("cp932")}
    data = zip_of(members, cp932_names=True)
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert not infos[0].flag_bits & 0x800  # really written without the flag
    assert member_name(infos[0]) == "介護/R4介護認定者.xlsx"
    result = run("名簿.zip", data)
    [table] = [u for u in result if isinstance(u, TableUnit)]
    assert table.part == "名簿.zip/介護/R4介護認定者.xlsx"
    assert table.location == "名簿.zip/介護/R4介護認定者.xlsx!Sheet"
    assert list(table.rows())[1].cells == ["山田太郎", "0000012345"]
    [text] = [u for u in result if isinstance(u, TextUnit)]
    assert (text.part, text.text) == ("名簿.zip/メモ.txt", "個人番号一覧")


def test_utf8_flagged_names_are_kept() -> None:
    data = zip_of({"名簿.txt": b"hello"})
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x800
    [unit] = run("a.zip", data)
    assert unit.part == "a.zip/名簿.txt"


def test_nested_zip_and_too_deep() -> None:
    inner = zip_of({"R4.xlsx": xlsx_bytes()})
    outer = zip_of({"inner.zip": inner, "readme.txt": b"see inner"})
    [table] = [u for u in run("outer.zip", outer) if isinstance(u, TableUnit)]
    assert table.part == "outer.zip/inner.zip/R4.xlsx"
    result = run("outer.zip", outer, Limits(max_depth=1))
    assert Unscannable("outer.zip/inner.zip", "too_deep",
                       "archive nesting over 1") in result
    assert not any(isinstance(u, TableUnit) for u in result)
    assert any(isinstance(u, TextUnit) and u.part == "outer.zip/readme.txt" for u in result)


def test_zip_bomb_by_ratio() -> None:
    bomb = zip_of({"zeros.txt": bytes(8 << 20), "ok.txt": b"fine"})
    result = run("bomb.zip", bomb)
    assert any(isinstance(u, Unscannable) and u.reason == "too_large"
               and u.part == "bomb.zip/zeros.txt" and "ratio" in u.detail for u in result)
    assert any(isinstance(u, TextUnit) and u.part == "bomb.zip/ok.txt" for u in result)


def test_zip_bomb_by_total_size_across_nested_archives() -> None:
    noise = os.urandom(400_000)  # incompressible: the ratio check does not fire
    inner = zip_of({f"n{i}.bin": noise for i in range(3)})
    outer = zip_of({"a.zip": inner, "b.zip": inner})
    result = run("big.zip", outer, Limits(max_total_bytes=2_000_000))
    too_large = [u for u in result if isinstance(u, Unscannable) and u.reason == "too_large"]
    assert too_large and "archive content over 2000000 bytes" in too_large[0].detail
    assert sum(isinstance(u, Skipped) for u in result) < 6  # reading stopped early


def test_member_over_part_limit_and_member_count() -> None:
    data = zip_of({"a.txt": b"x" * 5000, "b.txt": b"y"})
    assert len(data) < 1000
    result = run("p.zip", data, Limits(max_part_bytes=1000))
    assert result[0] == Unscannable("p.zip/a.txt", "too_large", "member over 1000 bytes")
    assert isinstance(result[1], TextUnit)
    many = zip_of({f"{i}.txt": b"x" for i in range(20)})
    assert run("many.zip", many, Limits(max_members=10))[0].reason == "too_large"


def test_aes_encrypted_zip() -> None:
    out = io.BytesIO()
    with pyzipper.AESZipFile(out, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"secret")
        zf.writestr("名簿.xlsx", xlsx_bytes())
    result = run("送付.zip", out.getvalue())
    assert result == [Unscannable("送付.zip/名簿.xlsx", "encrypted_archive",
                                  "password-protected member")]


def _zipcrypto_encrypt(plain: bytes, password: bytes, check_byte: int) -> bytes:
    """Traditional PKWARE encryption, as `zip -e` writes it."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc(value: int, byte: int) -> int:
        return zlib.crc32(bytes([byte]), value ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    def update(byte: int) -> None:
        keys[0] = crc(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc(keys[2], keys[1] >> 24)

    for byte in password:
        update(byte)
    out = bytearray()
    for byte in os.urandom(11) + bytes([check_byte]) + plain:
        temp = keys[2] | 2
        out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def zipcrypto_zip(name: str, plain: bytes, password: bytes) -> bytes:
    crc = zlib.crc32(plain)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo(name)
        info.flag_bits |= 0x1
        zf.writestr(info, _zipcrypto_encrypt(plain, password, crc >> 24))
    data = bytearray(out.getvalue())  # zipfile resets the flags and CRCs what it wrote
    central = data.rfind(b"PK\x01\x02")
    for flags_at, crc_at in ((6, 14), (central + 8, central + 16)):
        flags = struct.unpack_from("<H", data, flags_at)[0] | 0x1
        struct.pack_into("<H", data, flags_at, flags)
        struct.pack_into("<I", data, crc_at, crc)
    return bytes(data)


def test_zipcrypto_encrypted_zip() -> None:
    data = zipcrypto_zip("個人番号.csv", "個人番号,氏名\n".encode(), b"pass")
    with pyzipper.AESZipFile(io.BytesIO(data)) as zf:  # a real ZipCrypto archive
        assert zf.read("個人番号.csv", pwd=b"pass") == "個人番号,氏名\n".encode()
    assert run("x.zip", data) == [
        Unscannable("x.zip/個人番号.csv", "encrypted_archive", "password-protected member")
    ]


def test_truncated_zip_is_corrupt() -> None:
    data = zip_of({"a.txt": b"hello" * 1000, "b.xlsx": xlsx_bytes()})
    [unit] = run("a.zip", data[: len(data) // 2])
    assert (unit.part, unit.reason) == ("a.zip", "corrupt")


def test_corrupt_member_does_not_stop_the_others() -> None:
    data = bytearray(zip_of({"a.txt": b"hello world " * 100, "b.txt": b"second"}))
    start = data.find(b"PK\x03\x04") + 30 + len("a.txt")
    data[start + 5:start + 25] = bytes(20)  # damage the deflate stream of a.txt
    result = run("d.zip", bytes(data))
    assert isinstance(result[0], Unscannable) and result[0].part == "d.zip/a.txt"
    assert result[0].reason == "corrupt"
    assert isinstance(result[1], TextUnit) and result[1].text == "second"


def _tnef_object(level: int, name: int, kind: int, data: bytes) -> bytes:
    return (struct.pack("<BHHI", level, name, kind, len(data)) + data
            + struct.pack("<H", sum(data) & 0xFFFF))


def test_winmail_dat_attachments_are_scanned() -> None:
    csv_data = "氏名,個人番号\r\n山田太郎,123456789018\r\n".encode("cp932")
    tnef = struct.pack("<IH", 0x223E9F78, 1)
    tnef += _tnef_object(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))  # version
    tnef += _tnef_object(1, 0x9007, 0x0006, struct.pack("<II", 932, 0))  # OEM codepage
    tnef += _tnef_object(2, 0x9002, 0x0006, bytes(14))  # attachment starts
    tnef += _tnef_object(2, 0x8010, 0x0001, "名簿.csv".encode("cp932") + b"\0")
    tnef += _tnef_object(2, 0x800F, 0x0006, csv_data)
    result = run("winmail.dat", tnef)
    [table] = [u for u in result if isinstance(u, TableUnit)]
    assert table.part == "winmail.dat/名簿.csv"
    assert list(table.rows())[1].cells == ["山田太郎", "123456789018"]
