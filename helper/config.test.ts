import { describe, expect, it } from 'vitest';
import { parseHelperConfig, type HelperConfig } from './config.js';

const BASE = { agent_address: 'unix:///run/agent/api.sock', cert_dir: 'certs' };
const parse = (doc: Record<string, unknown>): HelperConfig => parseHelperConfig(doc, 'helper.yaml', '/etc/anchorage');
const error = (doc: Record<string, unknown>): string => {
  try {
    parse(doc);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the config to be refused');
};

describe('helper.yaml', () => {
  it('fills the defaults and resolves paths against the file\'s directory', () => {
    expect(parse({ ...BASE, pid_file_name: 'nginx.pid', renew_signal: 'SIGHUP' })).toEqual({
      source: 'helper.yaml',
      agent_address: 'unix:///run/agent/api.sock',
      cert_dir: '/etc/anchorage/certs',
      svid_file_name: 'svid.pem',
      svid_key_file_name: 'svid_key.pem',
      svid_bundle_file_name: 'bundle.pem',
      federated_bundles_dir_name: 'federated',
      include_federated_domains: false,
      add_intermediates_to_bundle: false,
      jwt_svids: [],
      cmd_args: [],
      cmd_timeout: 30_000,
      pid_file_name: '/etc/anchorage/nginx.pid',
      renew_signal: 'SIGHUP',
      retry_initial: 1000,
      retry_max: 60_000,
      startup_timeout: 60_000,
      daemon_mode: true,
      keep_generations: 3,
      log_level: 'info',
    });
  });

  it('refuses unknown keys, naming them', () => {
    expect(error({ ...BASE, certDir: 'x', svid_file: 'a' })).toBe('config: helper.yaml: (top level): unknown key(s): certDir, svid_file');
    expect(error({ ...BASE, jwt_svids: [{ jwt_audience: 'a', jwt_svid_file_name: 'a.jwt', audience: 'b' }] })).toBe('config: helper.yaml: jwt_svids.0: unknown key(s): audience');
  });

  it('refuses bad signal names, and a signal without a pid file or a pid file without a signal', () => {
    expect(error({ ...BASE, pid_file_name: '/run/x.pid', renew_signal: 'SIGFOO' })).toBe(
      'config: helper.yaml: renew_signal: "SIGFOO" is not a signal name such as SIGHUP or SIGUSR1 (SIGKILL and SIGSTOP reload nothing)',
    );
    expect(error({ ...BASE, pid_file_name: '/run/x.pid', renew_signal: 'hup' })).toContain('renew_signal: "hup" is not a signal name');
    expect(error({ ...BASE, pid_file_name: '/run/x.pid', renew_signal: 'SIGKILL' })).toContain('renew_signal: "SIGKILL" is not a signal name');
    expect(error({ ...BASE, pid_file_name: '/run/x.pid' })).toBe('config: helper.yaml: renew_signal: is required with pid_file_name');
    expect(error({ ...BASE, renew_signal: 'SIGHUP' })).toBe('config: helper.yaml: pid_file_name: is required with renew_signal');
    expect(error({ ...BASE, cmd: '/usr/sbin/nginx', pid_file_name: '/run/x.pid', renew_signal: 'SIGHUP' })).toBe('config: helper.yaml: (top level): give cmd or pid_file_name, not both');
  });

  it('wants cmd_args as a list (no shell splits a string) and only with cmd', () => {
    expect(error({ ...BASE, cmd: '/usr/sbin/nginx', cmd_args: '-s reload' })).toBe('config: helper.yaml: cmd_args: must be a list of strings (no shell parses it)');
    expect(error({ ...BASE, cmd_args: ['-s', 'reload'] })).toBe('config: helper.yaml: cmd_args: needs cmd');
  });

  it('refuses file names that are paths, hidden, the helper\'s own, or used twice', () => {
    expect(error({ ...BASE, svid_file_name: '../etc/passwd' })).toBe('config: helper.yaml: svid_file_name: must be a plain file name (no "/", not "." or "..")');
    expect(error({ ...BASE, svid_file_name: 'svid\n.pem' })).toBe('config: helper.yaml: svid_file_name: must not hold control or bidirectional formatting characters');
    expect(error({ ...BASE, svid_file_name: 'svid\u202e.pem' })).toContain('svid_file_name: must not hold control');
    expect(error({ ...BASE, svid_key_file_name: 'current' })).toBe('config: helper.yaml: svid_key_file_name: must not start with "." nor be "current" or "helper.lock" (the helper\'s own names)');
    expect(error({ ...BASE, svid_bundle_file_name: 'helper.lock' })).toContain('svid_bundle_file_name: must not start with "." nor be "current" or "helper.lock"');
    expect(error({ ...BASE, svid_bundle_file_name: '.gen-1' })).toContain('svid_bundle_file_name: must not start with "."');
    expect(error({ ...BASE, svid_bundle_file_name: 'svid.pem' })).toBe('config: helper.yaml: (top level): the file name "svid.pem" is used twice');
    expect(error({ ...BASE, jwt_svids: [{ jwt_audience: 'a', jwt_svid_file_name: 'svid_key.pem' }] })).toBe('config: helper.yaml: (top level): the file name "svid_key.pem" is used twice');
  });

  it('refuses bad durations, counts and addresses', () => {
    expect(error({ ...BASE, cmd_timeout: '0s' })).toBe('config: helper.yaml: cmd_timeout: "0s" must be greater than zero');
    expect(error({ ...BASE, cmd_timeout: '1h' })).toBe('config: helper.yaml: cmd_timeout: must be between 1s and 600s');
    expect(error({ ...BASE, retry_initial: '10s', retry_max: '5s' })).toBe('config: helper.yaml: retry_max: must not be less than retry_initial');
    expect(error({ ...BASE, keep_generations: 1 })).toBe('config: helper.yaml: keep_generations: must be at least 2');
    expect(error({ ...BASE, agent_address: 'unix://host/run/api.sock' })).toMatch(/^config: helper\.yaml: agent_address: workloadapi: address "unix:\/\/host\/run\/api\.sock": /);
    expect(error({ ...BASE, agent_address: 'relative/api.sock' })).toMatch(/^config: helper\.yaml: agent_address: workloadapi: address "relative\/api\.sock": /);
    expect(error({ cert_dir: 'x' })).toBe(
      process.env.SPIFFE_ENDPOINT_SOCKET ? expect.anything() : 'config: helper.yaml: agent_address: is required when SPIFFE_ENDPOINT_SOCKET is not set',
    );
    expect(error({ agent_address: '/run/api.sock' })).toBe('config: helper.yaml: cert_dir: Invalid input: expected string, received undefined');
  });
});
