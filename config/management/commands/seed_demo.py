from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import translation

from campaigns.demo.coupons import coupons_seed
from campaigns.demo.promotions import promotions_seed
from campaigns.demo.targeting import load as targeting_load
from cards import demo as cards_demo
from cards.demo import showcase as cards_showcase
from cards.demo.brands import _seed_user
from integrations.demo import webhooks_seed
from membership import demo as membership_demo
from membership.demo import showcase as membership_showcase
from membership.demo.benefits import benefits_seed
from membership.demo.claims import claims_seed
from membership.demo.partners import seed_partners
from reports.demo import reports_history_seed, reports_seed
from settlement.demo import settlement_seed
from stores import demo as stores_demo


class Command(BaseCommand):
    help = (
        "Load the reference data (formats, stores, card products, ...) and realistic demo data: members, a year of "
        "their purchases across the formats, tiers, points and a gift catalogue, and prepaid cards in every state "
        "with a year of card payments, a brand card programme and pickup vouchers sold to a company. "
        "Safe to run twice: rows are matched by their codes, demo members by their demo number."
    )

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=2000, help="How many demo members (default 2000).")
        parser.add_argument("--cards", type=int, default=300, help="How many demo prepaid cards (default 300).")
        parser.add_argument(
            "--once", action="store_true",
            help="Do nothing when the reference stores are already there (used by `make run`).",
        )

    def handle(self, *args, **options):
        for name in ("members", "cards"):
            if options[name] < 0:
                raise CommandError(f"--{name} must be 0 or more")
        from stores.models import Store

        if options["once"] and Store.objects.filter(code="DEPT001").exists():
            self.stdout.write("Demo data already loaded.")
            return
        try:
            stores = stores_demo.seed_stores()
            staff = stores_demo.seed_staff(password=settings.DEMO_ADMIN_PASSWORD)
            members = membership_demo.seed_members(count=options["members"])
            loyalty = membership_demo.seed_loyalty()
            walk_in_sales = membership_demo.seed_walk_in_sales()
            cards = cards_demo.seed_cards(count=options["cards"])
            brand_vouchers = cards_demo.seed_brand_cards_and_vouchers()
            # The README's members and cards, sale orders of both kinds, and requests waiting for hq_approver.
            showcase = membership_showcase.seed_showcase_members()
            partners = seed_partners()
            seeder = _seed_user(None)
            card_showcase = cards_showcase.seed_card_showcase(requester=seeder)
            member_approvals = membership_showcase.seed_member_approvals(requester=seeder)
            # Benefits with quotas on the tiers and a few uses; walk-in receipts claimed afterwards (补积分).
            with translation.override(settings.LANGUAGE_CODE):
                benefits = benefits_seed()
            claims = claims_seed()
            # Coupons, points promotions and a member day, with results to look at.
            coupons_seed(stdout=self.stdout)
            promotions_seed(stdout=self.stdout)
            # Segments from the scenarios, an ended campaign with results and a running call list at DEPT001.
            # Scenario names and texts are stored in the site's language (commands run untranslated).
            with translation.override(settings.LANGUAGE_CODE):
                targeting_load(stdout=self.stdout)
            # Card sales, card spending and purchases back to 14 months ago, before settlement clears and closes them.
            history = reports_history_seed()
            # Settlement: clearing rules and file layouts, last closed month locked with its statements, this month's
            # reconciliation with two exceptions to work off at DEPT001.
            with translation.override(settings.LANGUAGE_CODE):
                settlement_seed(stdout=self.stdout)
            # Report definitions with their beat schedules, each run once into the archive.
            with translation.override(settings.LANGUAGE_CODE):
                reports = reports_seed()
            # An example webhook subscription, switched off (its receiver is not running).
            webhooks_seed()
        except DatabaseError as error:
            raise CommandError(f"could not load demo data: {error}") from error
        self.stdout.write(self.style.SUCCESS(f"Stores: {stores}. Demo staff: {', '.join(staff)}."))
        self.stdout.write(self.style.SUCCESS(
            f"Members: {members.created} created, {members.existing} already there, "
            f"{members.points_entries} opening points entries."
        ))
        tiers = ", ".join(f"{name} {count}" for name, count in loyalty.tiers.items() if count) or "no changes"
        self.stdout.write(self.style.SUCCESS(
            f"Loyalty: {loyalty.earn_rules} earn rules and {loyalty.gifts} gifts created; "
            f"{loyalty.purchases} purchases with {loyalty.points_entries} points entries "
            f"({loyalty.points_held} held in a return window); tiers: {tiers}; Plus sold: {loyalty.plus}; "
            f"{walk_in_sales} sales without a member."
        ))
        plans = ", ".join(f"{plan} {count}" for plan, count in sorted(cards.by_plan.items())) or "none new"
        self.stdout.write(self.style.SUCCESS(
            f"Cards: {cards.products} products created; {cards.created} demo cards created ({plans}), "
            f"{cards.existing} already there; {cards.entries} card ledger entries."
        ))
        brand = brand_vouchers.brand
        self.stdout.write(self.style.SUCCESS(
            f"Brand cards: programme BRANDDEMO5 on BRANDDEMO ({brand['skus']} SKUs listed, {brand['cards']} cards and "
            f"{brand['payments']} discounted payments created). Pickup vouchers: {brand_vouchers.vouchers} in the "
            f"demo batch, {brand_vouchers.vouchers_sold} sold to a company now."
        ))
        self.stdout.write(self.style.SUCCESS(
            f"Benefits: {benefits.benefits} created with {benefits.quotas} tier quotas and {benefits.uses} uses; "
            f"{claims} walk-in receipts claimed for members."
        ))
        self.stdout.write(self.style.SUCCESS(
            f"Partners: {partners.partners} created, {partners.members} members registered through them, "
            f"{partners.purchases} of their purchases."
        ))
        self.stdout.write(self.style.SUCCESS(
            f"Reports: {history['sale_orders']} card sale orders and {history['top_ups']} top-ups over the last "
            f"15 months ({history['card_payments']} card payments), {history['purchases']} purchases 13-14 months "
            f"ago; {reports['definitions']} report definitions and {reports['runs']} runs created."
        ))
        approvals = card_showcase.approvals + member_approvals
        self.stdout.write(self.style.SUCCESS(
            f"Showcase: {showcase.members} README members and {showcase.purchases} of their purchases, "
            f"{card_showcase.cards} cards, sale orders {', '.join(card_showcase.orders) or 'none new'}, "
            f"{len(card_showcase.pin_cards)} cards with PIN {cards_showcase.DEMO_PIN}; "
            f"waiting for approval now: {', '.join(approvals) or 'nothing new'}."
        ))
