import json
import stat

import pytest

from hubstead.core.passwords import PasswordStore, WeakPassword, generate


@pytest.fixture
def store(tmp_path):
    return PasswordStore(tmp_path / "state" / "passwords.json")


def test_set_and_verify(store):
    store.set("alice", "correct horse")
    assert store.verify("alice", "correct horse")
    assert not store.verify("alice", "wrong horse")
    assert not store.verify("bob", "correct horse")


def test_store_is_root_only_and_holds_no_clear_text(store):
    store.set("alice", "correct horse")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    text = store.path.read_text()
    assert "correct horse" not in text
    assert json.loads(text)["alice"]["hash"].startswith("$argon2id$")


def test_weak_password_is_refused_and_nothing_written(store):
    with pytest.raises(WeakPassword, match="at least 6"):
        store.set("alice", "short")
    assert not store.path.exists()


def test_bcrypt_hash_verifies_and_is_upgraded_to_argon2(store):
    import bcrypt
    store.path.parent.mkdir(parents=True)
    legacy = bcrypt.hashpw(b"legacy-pass", bcrypt.gensalt(rounds=4)).decode()
    store.path.write_text(json.dumps({"carol": {"hash": legacy}}))
    assert store.verify("carol", "legacy-pass")
    assert json.loads(store.path.read_text())["carol"]["hash"].startswith("$argon2id$")


def test_costlier_argon2_hash_of_an_older_install_still_logs_in_and_is_rehashed(store):
    import argon2

    store.path.parent.mkdir(parents=True)
    # What earlier Hubstead versions stored (passlib's argon2 defaults).
    older = argon2.PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("older-pass")
    store.path.write_text(json.dumps({"dora": {"hash": older}}))
    assert not store.verify("dora", "wrong-pass")
    assert json.loads(store.path.read_text())["dora"]["hash"] == older  # a failure re-hashes nothing
    assert store.verify("dora", "older-pass")
    rehashed = json.loads(store.path.read_text())["dora"]["hash"]
    assert rehashed != older and argon2.extract_parameters(rehashed).memory_cost < 65536
    assert store.verify("dora", "older-pass")


def test_overlong_password_against_bcrypt_is_a_failed_login_not_a_crash(store):
    import bcrypt
    store.path.parent.mkdir(parents=True)
    legacy = bcrypt.hashpw(b"legacy-pass", bcrypt.gensalt(rounds=4)).decode()
    store.path.write_text(json.dumps({"carol": {"hash": legacy}}))
    assert not store.verify("carol", "x" * 100)


def test_generated_passwords_are_long_distinct_and_unambiguous():
    made = {generate() for _ in range(50)}
    assert len(made) == 50
    assert all(len(p) == 14 and not set(p) & set("Il1O0o") for p in made)


def test_remove(store):
    store.set("alice", "correct horse")
    store.remove("alice")
    assert not store.has("alice")


def test_lockout_after_repeated_failures_refuses_even_the_right_password(store, monkeypatch):
    from hubstead.core.passwords import Lockout
    policy = Lockout(max_failures=3, seconds=60)
    store.set("alice", "correct horse")
    for _ in range(3):
        assert not store.verify("alice", "wrong", policy)
    assert store.account("alice").locked
    assert not store.verify("alice", "correct horse", policy)
    clock = __import__("time").time() + 61
    monkeypatch.setattr("hubstead.core.passwords.time.time", lambda: clock)
    assert store.verify("alice", "correct horse", policy)  # the lock expired


def test_a_success_resets_the_failure_count(store):
    from hubstead.core.passwords import Lockout
    policy = Lockout(max_failures=3, seconds=60)
    store.set("alice", "correct horse")
    store.verify("alice", "wrong", policy)
    store.verify("alice", "wrong", policy)
    assert store.verify("alice", "correct horse", policy)
    store.verify("alice", "wrong", policy)
    assert not store.account("alice").locked


def test_teacher_unlocks(store):
    from hubstead.core.passwords import Lockout
    store.set("alice", "correct horse")
    for _ in range(2):
        store.verify("alice", "wrong", Lockout(max_failures=2, seconds=600))
    assert store.account("alice").locked
    assert store.unlock("alice")
    assert store.verify("alice", "correct horse", Lockout(max_failures=2, seconds=600))
    assert not store.unlock("nobody")


def test_must_change_is_recorded_and_cleared_by_a_new_password(store):
    store.set("alice", "initial-pass", must_change=True)
    assert store.account("alice").must_change
    store.set("alice", "chosen-by-alice")
    assert not store.account("alice").must_change


def test_guesses_sent_at_once_are_not_all_checked_before_the_lock(store, monkeypatch):
    import threading

    from hubstead.core import passwords
    from hubstead.core.passwords import Lockout

    store.set("teacher", "correct horse")
    checked = []
    real_check = passwords._context.verify_and_update

    def slow_check(secret, stored):
        checked.append(secret)
        threading.Event().wait(0.05)  # a real argon2 check takes this long: the race window
        return real_check(secret, stored)

    monkeypatch.setattr(passwords._context, "verify_and_update", slow_check)
    policy = Lockout(max_failures=3, seconds=600)
    guesses = [threading.Thread(target=store.verify, args=("teacher", f"guess-{i}", policy)) for i in range(20)]
    for guess in guesses:
        guess.start()
    for guess in guesses:
        guess.join()
    assert len(checked) == 3
    assert store.account("teacher").locked
    assert not store.verify("teacher", "correct horse", policy)


def test_strangers_lock_the_account_but_not_its_owners_browser(store):
    from hubstead.core.passwords import Lockout
    policy = Lockout(max_failures=3, seconds=600)
    store.set("teacher", "correct horse")
    for _ in range(3):  # anyone on the internet
        assert not store.verify("teacher", "guess", policy)
    assert not store.verify("teacher", "correct horse", policy)  # a new browser: locked
    assert store.verify("teacher", "correct horse", policy, device="her-laptop")
    # Her browser's own wrong passwords lock that browser only, and a success clears them.
    for _ in range(3):
        assert not store.verify("teacher", "typo", policy, device="her-laptop")
    assert not store.verify("teacher", "correct horse", policy, device="her-laptop")
    assert store.verify("teacher", "correct horse", policy, device="her-phone")
    assert store.unlock("teacher")
    assert store.verify("teacher", "correct horse", policy, device="her-laptop")
    assert store.verify("teacher", "correct horse", policy)
    assert "devices" not in __import__("json").loads(store.path.read_text())["teacher"]


def _written(store) -> tuple[int, int]:
    stat = store.path.stat()
    return stat.st_ino, stat.st_mtime_ns


def test_wrong_passwords_write_nothing_until_the_account_locks(store):
    from hubstead.core.passwords import Lockout
    policy = Lockout(max_failures=3, seconds=600)
    store.set("alice", "correct horse")
    before = _written(store)
    for _ in range(2):
        assert not store.verify("alice", "wrong", policy)
    assert _written(store) == before  # strangers' guesses make no disk writes
    assert not store.verify("alice", "wrong", policy)
    assert store.account("alice").locked  # the third locks it: one write
    locked = _written(store)
    for _ in range(5):
        assert not store.verify("alice", "wrong", policy)
    assert _written(store) == locked
    store.unlock("alice")
    unlocked = _written(store)
    assert store.verify("alice", "correct horse", policy)
    assert _written(store) == unlocked  # a success with nothing to clear writes nothing either


def test_known_unknown_and_locked_names_take_the_same_time(store):
    import time

    from hubstead.core.passwords import Lockout
    store.set("known", "correct horse")
    store.set("locked", "correct horse")
    for _ in range(2):
        store.verify("locked", "guess", Lockout(max_failures=2, seconds=600))
    assert store.account("locked").locked
    policy = Lockout(max_failures=100, seconds=600)  # "known" stays unlocked
    times: dict[str, list[float]] = {"known": [], "nobody": [], "locked": []}
    for _ in range(15):
        for name, samples in times.items():
            start = time.perf_counter()
            assert not store.verify(name, "guess", policy)
            samples.append(time.perf_counter() - start)
    # The fastest of each (the least disturbed by the machine's other work).
    fastest = {name: min(samples) for name, samples in times.items()}
    assert max(fastest.values()) < 1.25 * min(fastest.values()), fastest
