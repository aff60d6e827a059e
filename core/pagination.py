"""The API's page numbers (a module of its own: DRF resolves the pagination class while
it defines its generic views, before core.api could be imported)."""

from rest_framework import pagination
from rest_framework.request import Request


class Pagination(pagination.LimitOffsetPagination):
    """Limit/offset pages whose numbers stay within what the databases take: a limit
    past ``max_limit`` is cut to it and an offset past ``MAX_OFFSET`` reads an empty
    page (a 20-digit limit reached SQLite as an integer it refused: a 500)."""

    max_limit = 1000
    MAX_OFFSET = 2**53

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), self.MAX_OFFSET)
