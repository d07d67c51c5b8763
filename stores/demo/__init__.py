"""Reference and demo data for stores: formats, companies, regions, ~300 stores, demo staff.

Every function here is idempotent: rows are found by their code and updated,
so `seed_demo` can run any number of times.
"""

import random
from datetime import date, timedelta

from django.contrib.auth.models import Group, User
from django.db import transaction
from simple_history.utils import bulk_create_with_history, bulk_update_with_history
from stdnum.cn import uscc

from stores.models import Format, LegalEntity, Region, StaffProfile, Store

GROUP_BRAND = "嘉禾"

# code, name, company, credit code body (17 characters before the check digit is found), finance, POS
FORMATS = [
    ("DEPT", "百货", "嘉禾百货有限公司", "9150000020284773", "FIN-DEPT", "POS-DEPT"),
    ("SUPER", "超市", "嘉禾超市连锁有限公司", "9150000020284774", "FIN-SUPER", "POS-SUPER"),
    ("ELEC", "电器", "嘉禾电器有限公司", "9150000020284775", "FIN-ELEC", "POS-ELEC"),
    ("AUTO", "汽贸", "嘉禾汽车贸易有限公司", "9150000020284776", "FIN-AUTO", "POS-AUTO"),
]
STORE_NAME = {"DEPT": "嘉禾百货{}店", "SUPER": "嘉禾超市{}店", "ELEC": "嘉禾电器{}店", "AUTO": "嘉禾汽贸{}4S店"}

# province code, province, [(city code, city, area code, [shopping districts])]
REGIONS = [
    ("CQ", "重庆市", [
        ("CQ_ZC", "重庆主城", "023", [
            "解放碑", "观音桥", "南坪", "沙坪坝", "杨家坪", "大坪", "江北嘴", "北碚", "大渡口", "渝北",
            "两路", "礼嘉", "西永", "茶园", "李家沱", "鱼洞", "石桥铺", "龙头寺", "弹子石", "上清寺",
        ]),
        ("CQ_WZ", "万州", "023", ["高笋塘", "北山", "万达广场"]),
        ("CQ_FL", "涪陵", "023", ["滨江", "李渡"]),
        ("CQ_YC", "永川", "023", ["兴龙湖", "渝西广场"]),
        ("CQ_JJ", "江津", "023", ["几江", "双福"]),
        ("CQ_HC", "合川", "023", ["南津街", "钓鱼城"]),
    ]),
    ("SC", "四川省", [
        ("SC_CD", "成都", "028", [
            "春熙路", "盐市口", "天府广场", "双楠", "光华", "高新", "金牛", "建设路", "犀浦", "温江",
            "龙泉驿", "双流", "新都", "郫都", "华阳", "驷马桥", "九眼桥", "红牌楼",
        ]),
        ("SC_MY", "绵阳", "0816", ["临园", "涪城", "高新区"]),
        ("SC_YB", "宜宾", "0831", ["南岸", "翠屏"]),
        ("SC_NC", "南充", "0817", ["五星花园", "顺庆"]),
        ("SC_LZ", "泸州", "0830", ["江阳", "龙马潭"]),
        ("SC_LS", "乐山", "0833", ["嘉州", "市中区"]),
        ("SC_DY", "德阳", "0838", ["旌阳", "文庙"]),
    ]),
    ("GZ", "贵州省", [
        ("GZ_GY", "贵阳", "0851", [
            "喷水池", "花果园", "观山湖", "小河", "白云", "中华路", "大十字", "金阳", "龙洞堡", "油榨街",
        ]),
        ("GZ_ZY", "遵义", "0851", ["丁字口", "汇川", "新蒲"]),
        ("GZ_LPS", "六盘水", "0858", ["钟山", "水城"]),
        ("GZ_AS", "安顺", "0851", ["西秀", "黄果树大街"]),
        ("GZ_BJ", "毕节", "0857", ["七星关", "碧阳"]),
    ]),
    ("HB", "湖北省", [
        ("HB_WH", "武汉", "027", [
            "江汉路", "光谷", "楚河汉街", "徐东", "武广", "王家湾", "后湖", "街道口", "钟家村", "汉口火车站",
            "青山", "沌口", "南湖", "常青花园", "武昌火车站", "东西湖",
        ]),
        ("HB_YC", "宜昌", "0717", ["夷陵", "西陵"]),
        ("HB_XY", "襄阳", "0710", ["樊城", "襄城"]),
        ("HB_JZ", "荆州", "0716", ["沙市", "荆州古城"]),
        ("HB_SY", "十堰", "0719", ["茅箭", "张湾"]),
        ("HB_ES", "恩施", "0718", ["施州", "舞阳坝"]),
    ]),
]

DEMO_STAFF = [
    # username, first name, scope, group, store codes
    ("hq_approver", "总部审批员", StaffProfile.Scope.HQ, "总部管理员", []),
    ("dept001_manager", "解放碑百货店长", StaffProfile.Scope.STORES, "门店店长", ["DEPT001"]),
    ("super001_manager", "解放碑超市店长", StaffProfile.Scope.STORES, "门店店长", ["SUPER001"]),
    ("dept001_desk", "解放碑服务台", StaffProfile.Scope.STORES, "服务台", ["DEPT001"]),
    # Finance at headquarters closes the month; a format's finance sees its own company's statements and files.
    ("finance_hq", "总部财务", StaffProfile.Scope.HQ, "财务", []),
    ("super_finance", "超市财务", StaffProfile.Scope.STORES, "财务", ["SUPER001"]),
]


def _credit_code(body: str) -> str:
    for digit in "0123456789":
        candidate = body + digit
        number = candidate + uscc.calc_check_digit(candidate)
        if uscc.is_valid(number):
            return number
    raise ValueError(f"no valid credit code for {body}")


@transaction.atomic
def seed_formats() -> dict[str, Format]:
    formats = {}
    for code, name, company, credit_body, finance, pos in FORMATS:
        entity, _ = LegalEntity.objects.update_or_create(
            code=f"LE_{code}",
            defaults={
                "name": company,
                "credit_code": _credit_code(credit_body[:16]),
                "address": "重庆市渝中区民族路188号",
                "prepaid_filing_no": f"渝商预备{2019 + len(formats)}0{len(formats) + 1}号",
            },
        )
        formats[code], _ = Format.objects.update_or_create(
            code=code,
            defaults={"name": name, "legal_entity": entity, "finance_system_code": finance, "pos_system_code": pos},
        )
    return formats


@transaction.atomic
def seed_stores() -> int:
    """Create the reference formats and about 300 stores over four provinces; return the store count.

    Written in bulk (with their history rows): tests seed them for every scenario. A second run changes only
    what differs from the reference data.
    """
    formats = seed_formats()
    rng = random.Random(20261123)
    counters = {code: 0 for code in STORE_NAME}
    # Every district has a supermarket; department, electronics and car stores go to the bigger ones.
    share = {"DEPT": 0.5, "SUPER": 1.0, "ELEC": 0.7, "AUTO": 0.35}
    wanted: dict[str, dict] = {}
    for province_code, province_name, cities in REGIONS:
        province, _ = Region.objects.update_or_create(
            code=province_code, defaults={"name": province_name, "level": Region.Level.PROVINCE, "parent": None}
        )
        for city_code, city_name, area_code, districts in cities:
            city, _ = Region.objects.update_or_create(
                code=city_code, defaults={"name": city_name, "level": Region.Level.CITY, "parent": province}
            )
            for index, district in enumerate(districts):
                for format_code, template in STORE_NAME.items():
                    if index and rng.random() > share[format_code]:
                        continue
                    counters[format_code] += 1
                    wanted[f"{format_code}{counters[format_code]:03d}"] = {
                        "name": template.format(district),
                        "format": formats[format_code],
                        "region": city,
                        "address": f"{province_name}{city_name}{district}{rng.randint(1, 399)}号",
                        "phone": f"{area_code}-{rng.randint(6000_0000, 8999_9999)}",
                        "opened_on": date(2008, 1, 1) + timedelta(days=rng.randint(0, 5800)),
                    }
    existing = Store.objects.in_bulk(list(wanted), field_name="code")
    bulk_create_with_history([Store(code=code, **values) for code, values in wanted.items() if code not in existing],
                             Store, batch_size=500)
    changed = []
    for code, store in existing.items():
        values = wanted[code]
        if any(getattr(store, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(store, name, value)
            changed.append(store)
    if changed:
        bulk_update_with_history(changed, Store, list(next(iter(wanted.values()))), batch_size=500)
    return Store.objects.count()


@transaction.atomic
def seed_staff(*, password: str) -> list[str]:
    """Demo staff users (HQ approver, store managers, a desk clerk); return their usernames."""
    names = []
    for username, first_name, scope, group_name, store_codes in DEMO_STAFF:
        user, created = User.objects.get_or_create(
            username=username, defaults={"first_name": first_name, "is_staff": True}
        )
        if created:
            user.set_password(password)
            user.save()
        user.groups.add(Group.objects.get(name=group_name))
        profile, _ = StaffProfile.objects.update_or_create(user=user, defaults={"scope": scope})
        profile.stores.set(Store.objects.filter(code__in=store_codes))
        names.append(username)
    return names
