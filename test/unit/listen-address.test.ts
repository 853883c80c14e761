import { describe, expect, it } from 'vitest';
import { parseListenAddress } from '../../src/listen-address.ts';

describe('listen addresses ([host]:port), one grammar for config and listeners', () => {
  it('reads every form a user writes', () => {
    expect(parseListenAddress(':9402')).toEqual({ host: undefined, port: 9402 });
    expect(parseListenAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListenAddress('[::1]:8089')).toEqual({ host: '::1', port: 8089 });
    expect(parseListenAddress('metrics.example:80')).toEqual({ host: 'metrics.example', port: 80 });
  });
  it('refuses what cannot be bound', () => {
    for (const bad of ['9402', ':', ':70000', 'host:port', '::1:80', '[::1]', 'a b:80', ':-1']) {
      expect(parseListenAddress(bad), bad).toBeUndefined();
    }
  });
});
