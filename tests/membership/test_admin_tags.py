"""Tags in the admin: counts, bulk tagging by an Excel or CSV file, and the member list actions."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook

from membership.models import MemberTag, Tag
from tests.membership.conftest import register

TAGS = "/admin/membership/tag/"
MEMBERS = "/admin/membership/member/"


def _bulk_url(tag):
    return f"{TAGS}{tag.pk}/bulk/"


def _xlsx(rows, name="members.xlsx"):
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return SimpleUploadedFile(name, buffer.getvalue(),
                              content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@pytest.fixture
def en_client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def vip_tag(db):
    return Tag.objects.create(name="VIP", description="高价值会员")


@pytest.fixture
def three_members(dept001, super001):
    return [
        register(name="李建国", phone="13800138000", store=dept001),
        register(name="王芳", phone="13700137000", store=dept001),
        register(name="赵丽", phone="13600136000", store=super001),
    ]


def _tagged(tag):
    return set(MemberTag.objects.filter(tag=tag).values_list("member__member_no", flat=True))


def test_tag_list_shows_member_counts(client, hq_admin, vip_tag, three_members):
    MemberTag.objects.create(member=three_members[0], tag=vip_tag)
    MemberTag.objects.create(member=three_members[1], tag=vip_tag)
    Tag.objects.create(name="新客")
    client.force_login(hq_admin)

    response = client.get(TAGS)

    counts = {tag.name: tag.member_count for tag in response.context["cl"].result_list}
    assert counts == {"VIP": 2, "新客": 0}


def test_bulk_tag_by_xlsx_reports_added_already_and_unknown(en_client, hq_admin, vip_tag, three_members):
    first, second, third = three_members
    MemberTag.objects.create(member=second, tag=vip_tag)
    en_client.force_login(hq_admin)
    upload = _xlsx([["姓名", "会员号"], ["李建国", int(first.member_no)], ["王芳", second.member_no],
                    ["无名", "800000000018"], [None, None], ["赵丽", third.member_no]])

    response = en_client.post(_bulk_url(vip_tag), {"file": upload})

    result = response.context["result"]
    assert response.status_code == 200
    assert (result.added, result.already, result.unknown) == (2, 1, ["800000000018"])
    assert "800000000018" in response.content.decode()
    assert _tagged(vip_tag) == {first.member_no, second.member_no, third.member_no}
    assert MemberTag.objects.get(member=first, tag=vip_tag).added_by == hq_admin


def test_bulk_tag_by_gbk_csv_with_numbers_in_the_first_column(en_client, hq_admin, vip_tag, three_members):
    first, second, _third = three_members
    en_client.force_login(hq_admin)
    content = f"{first.member_no},李建国\n{second.member_no},王芳\n".encode("gbk")

    response = en_client.post(_bulk_url(vip_tag), {"file": SimpleUploadedFile("名单.csv", content)})

    assert response.context["result"].added == 2
    assert _tagged(vip_tag) == {first.member_no, second.member_no}


def test_unknown_numbers_download_as_csv(en_client, hq_admin, vip_tag):
    en_client.force_login(hq_admin)

    response = en_client.post(f"{_bulk_url(vip_tag)}unknown.csv", {"numbers": "800000000018\n=cmd()\n"})

    assert response["Content-Type"].startswith("text/csv")
    assert response.content.decode("utf-8-sig").splitlines() == ["member_no", "800000000018", "'=cmd()"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("members.xls", b"\xd0\xcf\x11\xe0 old excel", "Upload an .xlsx or .csv file"),
    ("members.pdf", b"%PDF-1.4", "Upload an .xlsx or .csv file"),
    ("members.xlsx", b"not a zip at all", "could not be read as an Excel workbook"),
    ("members.csv", "姓名,手机\n李建国,13800138000\n".encode(), "No member number column"),
    ("members.csv", b"member_no\n\n", "holds no member numbers"),
    ("members.csv", b"", "The submitted file is empty"),
])
def test_a_bad_file_gets_a_clear_message_and_tags_nothing(en_client, hq_admin, vip_tag, three_members,
                                                          name, content, message):
    en_client.force_login(hq_admin)

    response = en_client.post(_bulk_url(vip_tag), {"file": SimpleUploadedFile(name, content)})

    assert response.status_code == 200
    assert response.context["result"] is None
    assert message in " ".join(response.context["form"].errors["file"])
    assert not MemberTag.objects.exists()


def test_a_number_excel_shortened_refuses_the_whole_file(en_client, hq_admin, vip_tag, three_members):
    en_client.force_login(hq_admin)
    content = f"member_no\n{three_members[0].member_no}\n8.62576E+11\n".encode()

    response = en_client.post(_bulk_url(vip_tag), {"file": SimpleUploadedFile("members.csv", content)})

    assert "Row 3: 8.62576E+11 is a number Excel shortened" in " ".join(response.context["form"].errors["file"])
    assert not MemberTag.objects.exists()


def test_an_empty_xlsx_is_refused(en_client, hq_admin, vip_tag):
    en_client.force_login(hq_admin)

    response = en_client.post(_bulk_url(vip_tag), {"file": _xlsx([["会员号"]])})

    assert "holds no member numbers" in " ".join(response.context["form"].errors["file"])
    assert not MemberTag.objects.exists()


def test_bulk_tagging_needs_the_change_permission_on_tags(client, dept001_manager, vip_tag, three_members):
    client.force_login(dept001_manager)

    response = client.post(_bulk_url(vip_tag), {"file": _xlsx([[three_members[0].member_no]])})

    assert response.status_code == 403
    assert not MemberTag.objects.exists()


def test_tag_action_adds_the_tag_to_the_selected_members(client, hq_admin, vip_tag, three_members):
    client.force_login(hq_admin)
    selected = [three_members[0].pk, three_members[2].pk]

    page = client.post(MEMBERS, {"action": "tag_members", "_selected_action": selected})
    response = client.post(MEMBERS, {"action": "tag_members", "_selected_action": selected, "apply": "1",
                                     "tag": vip_tag.pk})

    assert page.status_code == 200 and "tag" in page.context["form"].fields
    assert response.status_code == 302
    assert _tagged(vip_tag) == {three_members[0].member_no, three_members[2].member_no}


def test_untag_action_removes_the_tag_from_the_selected_members_only(client, hq_admin, vip_tag, three_members):
    for member in three_members:
        MemberTag.objects.create(member=member, tag=vip_tag)
    client.force_login(hq_admin)

    client.post(MEMBERS, {"action": "untag_members", "_selected_action": [three_members[0].pk], "apply": "1",
                          "tag": vip_tag.pk})

    assert _tagged(vip_tag) == {three_members[1].member_no, three_members[2].member_no}


def test_tag_action_without_a_tag_changes_nothing(client, hq_admin, vip_tag, three_members):
    client.force_login(hq_admin)

    response = client.post(MEMBERS, {"action": "tag_members", "_selected_action": [three_members[0].pk],
                                     "apply": "1", "tag": ""})

    assert response.status_code == 200 and response.context["form"].errors["tag"]
    assert not MemberTag.objects.exists()


def test_the_tag_page_links_to_the_bulk_upload(client, hq_admin, vip_tag):
    client.force_login(hq_admin)

    change = client.get(f"{TAGS}{vip_tag.pk}/change/")
    upload = client.get(_bulk_url(vip_tag))

    assert _bulk_url(vip_tag) in change.content.decode()
    assert upload.status_code == 200 and upload.context["result"] is None
