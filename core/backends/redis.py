"""Django's Redis cache with one redis-py client per connection pool instead of one per call.

Django builds a new `redis.Redis` for every cache operation; building one fills its table of some 160 response
callbacks, which costs more CPU than the round trip itself on a POS request (the rate limit and the unknown
card numbers are counted in the cache on every card call). A client is only a handle on its pool, safe to share
between threads, so each pool gets one for the life of the process.
"""

from django.core.cache.backends import redis as django_redis

__all__ = ["RedisCache"]


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
