"""Named things of one kind, in the order registered: the one mechanism behind convscope's
registries of layer kinds (and their torch modules), tasks and datasets."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(MutableMapping[str, T], Generic[T]):
    """Name -> item. :meth:`add` refuses a name already taken and :meth:`remove` one not there,
    each raising ``error`` with a message naming the ``noun``; ``builtins()``, when given,
    supplies the built-in items on first use; ``check(name, item)`` vets every item set."""

    def __init__(self, noun: str, error: type[Exception] = ValueError, *,
                 builtins: Callable[[], list[tuple[str, T]]] | None = None,
                 check: Callable[[str, T], None] | None = None) -> None:
        self.noun, self.error = noun, error
        self._items: dict[str, T] = {}
        self._builtins, self._check = builtins, check

    def _all(self) -> dict[str, T]:
        if self._builtins is not None:
            builtins, self._builtins = self._builtins, None
            for name, item in builtins():
                self[name] = item
        return self._items

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name``; returns it."""
        if name in self._all():
            raise self.error(f"{self.noun} {name!r} is already registered")
        self[name] = item
        return item

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests that register their own)."""
        if self._all().pop(name, None) is None:
            raise KeyError(f"no {self.noun} {name!r} is registered")

    def __getitem__(self, name: str) -> T:
        return self._all()[name]

    def __setitem__(self, name: str, item: T) -> None:
        if self._check is not None:
            self._check(name, item)
        self._all()[name] = item

    def __delitem__(self, name: str) -> None:
        del self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._all()))

    def __len__(self) -> int:
        return len(self._all())
