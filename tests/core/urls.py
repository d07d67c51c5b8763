"""A POS write used only by the tests of the idempotency frame."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response

from core.api import PosPostView
from core.errors import LimitExceeded
from stores.models import Region


class ProvinceInput(serializers.Serializer):
    code = serializers.RegexField(r"^[A-Z]{2,10}$")
    fail = serializers.BooleanField(default=False)


class ProvinceCreateView(PosPostView):
    def create(self, request):
        data = ProvinceInput(data=request.data)
        data.is_valid(raise_exception=True)
        region = Region.objects.create(code=data.validated_data["code"], name="测试", level=Region.Level.PROVINCE)
        if data.validated_data["fail"]:
            raise LimitExceeded()
        return Response({"id": region.pk, "code": region.code}, status=201)


urlpatterns = [
    path("api/v1/test/provinces", ProvinceCreateView.as_view()),
    path("", include("config.urls")),
]
