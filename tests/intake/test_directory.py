"""The directory: explicit parents, Chongqing and 两江新区, problems, reload on change."""

from __future__ import annotations

import os
from pathlib import Path

import openpyxl
import pytest

from shortage_watch.domain.directory import Contact, Directory, Party, Region
from shortage_watch.intake.directory_files import DirectoryError, DirectoryFiles, load_directory
from shortage_watch.settings import DirectorySettings
from tests.intake.conftest import sample_directory_settings


@pytest.fixture(scope="module")
def sample() -> Directory:
    return load_directory(DirectorySettings(**sample_directory_settings()))


def test_the_shipped_sample_has_no_problems(sample: Directory) -> None:
    assert sample.problems() == []
    assert len(sample.regions) >= 14 and sample.distributors and sample.hospitals


def test_a_fujian_county_climbs_to_its_city_and_province(sample: Directory) -> None:
    assert [r.code for r in sample.ancestors("350921")] == ["350921", "350900", "350000"]
    assert sample.city_of("350921").name == "宁德市"
    assert sample.at_level("350921", "province").code == "350000"
    assert sample.at_level("350921", "county").code == "350921"


def test_a_chongqing_district_has_the_municipality_as_its_city(sample: Directory) -> None:
    assert sample.city_of("500112").code == "500000"
    assert sample.at_level("500112", "province").code == "500000"


def test_liangjiang_new_area_with_its_non_standard_code_resolves(sample: Directory) -> None:
    assert sample.region("5001LJ").name == "两江新区"
    assert sample.city_of("5001LJ").code == "500000"
    assert sample.is_within("5001LJ", "500000") and not sample.is_within("5001LJ", "350000")
    assert sample.contact("5001LJ", "insurance").name == "两江新区社会保障局"


def test_contacts_are_exact_and_some_regions_have_none(sample: Directory) -> None:
    assert sample.contact("350921", "insurance") is None  # 霞浦县: the router falls back to 宁德市
    assert sample.contact("350900", "insurance").emails == ("nd-ybj@example.com", "nd-ybj-duty@example.com")
    assert sample.contact("350981", "insurance").delivery == "digest"
    assert sample.contact("350000", "health").language == "zh-CN"
    assert sample.distributor("D350903").emails == ("xp-yy@example.com", "xp-yy-backup@example.com")
    assert sample.distributor("D500003").emails == ()
    assert sample.hospital("H5001LJ001").region_code == "5001LJ"


def test_problems_name_unknown_parents_cycles_regions_and_bad_emails() -> None:
    directory = Directory.build(
        regions=[Region("1", "A", "2", "county"), Region("2", "B", "1", "city"), Region("3", "C", "9", "county")],
        contacts=[Contact("4", "insurance", ("not-an-email",), "X")],
        distributors=[Party("D1", "Dist", "8", ("ok@example.com", "bad@"))],
    )
    problems = "\n".join(directory.problems())
    assert "unknown parent 9" in problems
    assert "cycle" in problems
    assert "contact insurance@4: unknown region 4" in problems and "'not-an-email'" in problems
    assert "distributor D1 Dist: unknown region 8" in problems and "'bad@'" in problems
    assert directory.ancestors("1") == [directory.regions["1"], directory.regions["2"]]  # cycle-safe


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_chinese_headers_gbk_and_bad_rows_become_problems(tmp_path: Path) -> None:
    regions = write_csv(tmp_path / "r.csv", "行政区划代码,名称,上级代码,级别\n350000,福建省,,省\n350900,宁德市,350000,市\n"
                        "350902,蕉城区,350900,区县\n350903,某区,350900,乡镇\n", "gbk")
    contacts = write_csv(tmp_path / "c.csv", "行政区划代码,角色,邮箱,名称\n350900,医保局,a@example.com；b@example.com,宁德\n"
                         "350900,财政,c@example.com,x\n")
    directory = load_directory(DirectorySettings(regions=regions, contacts=contacts))
    assert directory.region("350902").level == "county"
    assert directory.contact("350900", "insurance").emails == ("a@example.com", "b@example.com")
    problems = "\n".join(directory.problems())
    assert "r.csv row 5" in problems and "乡镇" in problems
    assert "c.csv row 3" in problems and "财政" in problems


def test_xlsx_directory_files_work(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    workbook.active.append(["code", "name", "parent_code", "level"])
    workbook.active.append(["500000", "重庆市", None, "province"])
    workbook.active.append([500103, "渝中区", 500000, "county"])
    path = tmp_path / "regions.xlsx"
    workbook.save(path)
    directory = load_directory(DirectorySettings(regions=path))
    assert directory.city_of("500103").name == "重庆市"


def test_a_missing_file_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError) as caught:
        load_directory(DirectorySettings(regions=tmp_path / "nope.csv"))
    assert "directory.regions" in str(caught.value) and "nope.csv" in str(caught.value)


def test_reloads_when_a_file_changes_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", "code,name,parent_code,level\n350000,福建省,,province\n")
    files = DirectoryFiles(DirectorySettings(regions=path))
    first = files.current()
    assert files.current() is first  # unchanged: no reload
    write_csv(path, "code,name,parent_code,level\n350000,福建省,,province\n350900,宁德市,350000,city\n")
    os.utime(path, ns=(first_ns := os.stat(path).st_mtime_ns + 10**9, first_ns))
    assert files.current().region("350900") is not None
    path.unlink()
    assert files.current().region("350900") is not None  # broken reload keeps the last good directory


def test_no_files_configured_is_an_empty_directory() -> None:
    directory = DirectoryFiles(DirectorySettings()).current()
    assert directory.is_empty() and directory.city_of("350902") is None


def test_a_directory_can_be_built_from_plain_lists() -> None:
    directory = Directory(regions=[Region("500000", "重庆市", None, "province"), Region("500103", "渝中区", "500000", "county")],
                          contacts=[Contact("500000", "health", ("cq@example.com",), "重庆市卫健委")],
                          distributors=[], hospitals=[Party("H1", "医院", "500103", ())])
    assert directory.city_of("500103").code == "500000"
    assert directory.contact("500000", "health").emails == ("cq@example.com",)
    assert directory.hospital("H1").region_code == "500103"
