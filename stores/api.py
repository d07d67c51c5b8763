from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ErrorEnvelopeSerializer


class TerminalKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "stores.api_auth.TerminalKeyAuthentication"
    name = "terminalKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The terminal key printed once by `manage.py create_terminal`.",
        }


class StoreSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    format = serializers.CharField(source="format.code")


class TerminalOutputSerializer(serializers.Serializer):
    terminal = serializers.CharField(source="name")
    store = StoreSerializer()


class TerminalView(APIView):
    """The calling terminal and its store; a POS checks its key with it."""

    @extend_schema(
        operation_id="terminal_retrieve",
        responses={200: TerminalOutputSerializer, 401: ErrorEnvelopeSerializer},
    )
    def get(self, request):
        return Response(TerminalOutputSerializer(request.auth).data)
