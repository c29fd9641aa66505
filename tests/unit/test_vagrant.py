"""vagrant/Vagrantfile: no hypervisor here, so it is never booted; Ruby checks its syntax
and evaluates it against a stand-in of Vagrant's configuration objects that records what
each box would get (its box, forwarded ports, synced folder and provisioning)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hubstead.core import paths

VAGRANTFILE = Path(__file__).resolve().parents[2] / "vagrant" / "Vagrantfile"

# Records the calls a Vagrantfile makes (a stand-in for Vagrant's own objects: only
# what this Vagrantfile uses) and prints every defined box as JSON.
RECORDER = r"""
require "json"

class Settings
  def method_missing(name, *args) = nil
  def respond_to_missing?(*) = true
end

class VM
  attr_accessor :box, :hostname
  attr_reader :ports, :inline, :folders, :defined

  def initialize
    @ports, @inline, @folders, @defined = [], [], [], {}
  end

  def synced_folder(source, target, **options) = @folders << [source, target]
  def provider(_name) = yield(Settings.new)
  def network(kind, **options) = (@ports << options if kind == "forwarded_port")
  def provision(_kind, inline:) = @inline << inline

  def define(name, **options)
    machine = Config.new
    yield machine
    @defined[name] = [options, machine.vm]
  end
end

class Config
  attr_reader :vm
  def initialize = @vm = VM.new
end

module Vagrant
  def self.configure(_version)
    config = Config.new
    yield config
    puts JSON.generate(config.vm.defined.to_h { |name, (options, vm)|
      [name, {"options" => options, "box" => vm.box, "hostname" => vm.hostname, "ports" => vm.ports,
              "provision" => config.vm.inline + vm.inline, "folders" => config.vm.folders + vm.folders}]
    })
  end
end

load ARGV[0]
"""


@pytest.fixture(scope="module")
def ruby():
    found = shutil.which("ruby")
    if not found:
        pytest.skip("ruby is not installed (tests/run installs it: apt-get install ruby)")
    return found


@pytest.fixture(scope="module")
def boxes(ruby, tmp_path_factory):
    recorder = tmp_path_factory.mktemp("vagrant") / "recorder.rb"
    recorder.write_text(RECORDER)
    out = subprocess.run([ruby, str(recorder), str(VAGRANTFILE)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_vagrantfile_is_valid_ruby(ruby):
    out = subprocess.run([ruby, "-c", str(VAGRANTFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Syntax OK" in out.stdout


def test_there_is_a_box_for_debian_12_debian_13_and_ubuntu_24_04(boxes):
    assert sorted(box["box"] for box in boxes.values()) == ["bento/ubuntu-24.04", "debian/bookworm64",
                                                            "debian/trixie64"]
    # A plain `vagrant up` starts one box, not three VMs at once.
    assert [name for name, box in boxes.items() if box["options"].get("autostart", True)] == ["bookworm"]


def test_each_box_installs_from_the_checkout(boxes):
    for box in boxes.values():
        assert ["..", "/opt/src"] in box["folders"]
        assert any("bin/bootstrap.py --from /opt/src" in line for line in box["provision"])


def test_each_box_forwards_the_hubs_port_to_its_own_port_on_the_laptops_loopback(boxes):
    forwarded = [port for box in boxes.values() for port in box["ports"]]
    assert len(forwarded) == len(boxes)
    assert all(port["guest"] == paths.HTTP_PORT and port["host_ip"] == "127.0.0.1" for port in forwarded)
    assert len({port["host"] for port in forwarded}) == len(boxes)
