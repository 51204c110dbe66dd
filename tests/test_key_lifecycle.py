"""Key lifecycle rules, on an injected clock: create, rotate with a grace period, revoke,
and config keys that stay read-only."""

from __future__ import annotations

import pytest

from gateway.apikeys.admin import KeyAdmin
from gateway.apikeys.directory import KeyDirectory
from gateway.apikeys.memory import MemoryKeys
from gateway.apikeys.requests import KeyChanges
from gateway.auth import KeyRing
from gateway.errors import AuthenticationFailed, InvalidRequest, NotFound
from gateway.settings import AuthSettings, KeySettings, LimitSettings, hash_key
from tests.support.clock import FakeClock

CONFIG_KEY = KeySettings(name="ops", sha256=hash_key("sk-config"))
MODELS = ["text-embedding-3-small"]


class World:
    def __init__(self, clock: FakeClock, store: MemoryKeys | None = None) -> None:
        self.store = store or MemoryKeys()
        self.directory = KeyDirectory(self.store, clock=clock)
        self.admin = KeyAdmin(
            self.store, [CONFIG_KEY], MODELS, directory=self.directory, clock=clock
        )
        self.ring = KeyRing(AuthSettings(keys=(CONFIG_KEY,)), self.directory)

    def accepts(self, secret: str) -> bool:
        try:
            self.ring.authenticate(secret)
        except AuthenticationFailed:
            return False
        return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(clock)


async def test_a_created_key_authenticates_as_its_own_principal(world: World) -> None:
    key, secret = await world.admin.create(KeyChanges(name="alice", team="red"))
    principal = world.ring.authenticate(secret)
    assert (principal.name, principal.team, principal.key_id) == ("alice", "red", key.id)
    assert secret.startswith("sk-gw-") and key.sha256 != secret


async def test_rotation_keeps_the_old_secret_only_for_the_grace_period(
    world: World, clock: FakeClock
) -> None:
    key, old = await world.admin.create(KeyChanges(name="alice"))
    _, new = await world.admin.rotate(key.id, grace_seconds=60)
    clock.advance(59)
    assert (world.accepts(old), world.accepts(new)) == (True, True)
    clock.advance(1)
    assert (world.accepts(old), world.accepts(new)) == (False, True)


async def test_rotation_without_grace_refuses_the_old_secret_at_once(world: World) -> None:
    key, old = await world.admin.create(KeyChanges(name="alice"))
    _, new = await world.admin.rotate(key.id, grace_seconds=0)
    assert (world.accepts(old), world.accepts(new)) == (False, True)


async def test_a_revoked_key_is_refused(world: World) -> None:
    key, secret = await world.admin.create(KeyChanges(name="alice"))
    await world.admin.revoke(key.id)
    assert not world.accepts(secret)
    with pytest.raises(NotFound):
        await world.admin.get(key.id)


async def test_config_keys_are_listed_but_read_only(world: World) -> None:
    config = (await world.admin.list())[0]
    assert (config.name, config.source) == ("ops", "config")
    with pytest.raises(InvalidRequest):
        await world.admin.update(config.id, KeyChanges(name="renamed"))
    with pytest.raises(InvalidRequest):
        await world.admin.revoke(config.id)
    assert world.accepts("sk-config")


async def test_names_are_unique_across_config_and_runtime_keys(world: World) -> None:
    await world.admin.create(KeyChanges(name="alice"))
    for taken in ("alice", "ops"):
        with pytest.raises(InvalidRequest):
            await world.admin.create(KeyChanges(name=taken))


async def test_a_change_made_elsewhere_shows_after_the_next_poll(clock: FakeClock) -> None:
    here = World(clock)
    there = World(clock, here.store)  # two instances on one store
    await there.directory.tick()
    _, secret = await here.admin.create(KeyChanges(name="alice"))
    assert not there.accepts(secret)
    await there.directory.tick()
    assert there.accepts(secret)


async def test_auth_stays_on_until_the_runtime_keys_could_be_read(clock: FakeClock) -> None:
    directory = KeyDirectory(MemoryKeys(), clock=clock)
    ring = KeyRing(AuthSettings(), directory)
    assert ring.enabled
    await directory.tick()
    assert not ring.enabled  # read, and there are none: auth is off as configured


async def test_revoking_the_last_runtime_key_keeps_auth_on(clock: FakeClock) -> None:
    store = MemoryKeys()
    directory = KeyDirectory(store, clock=clock)
    admin = KeyAdmin(store, [], MODELS, directory=directory, clock=clock)
    ring = KeyRing(AuthSettings(), directory)
    key, secret = await admin.create(KeyChanges(name="alice"))
    await admin.revoke(key.id)
    with pytest.raises(AuthenticationFailed):
        ring.authenticate(secret)


async def test_last_use_is_written_with_the_next_poll(world: World, clock: FakeClock) -> None:
    key, secret = await world.admin.create(KeyChanges(name="alice"))
    world.ring.authenticate(secret)
    world.ring.authenticate("sk-config")
    await world.directory.tick()
    used = await world.admin.last_used()
    assert used[key.id] == int(clock.now)
    assert (await world.admin.list())[0].id in used


async def test_each_of_n_workers_holds_its_share_of_a_runtime_keys_limits(
    clock: FakeClock,
) -> None:
    store = MemoryKeys()
    directory = KeyDirectory(store, clock=clock, workers=2)
    admin = KeyAdmin(store, [CONFIG_KEY], MODELS, directory=directory, clock=clock)
    limits = LimitSettings(requests_per_second=10, requests_burst=20)
    _, secret = await admin.create(KeyChanges(name="alice", limits=limits))
    principal = directory.find(hash_key(secret))
    assert principal is not None
    assert (principal.limits.requests_per_second, principal.limits.requests_burst) == (5, 10)
