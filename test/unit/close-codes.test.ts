import { describe, expect, it } from 'vitest';
import { CloseCode, isRetryable, isTransient } from '../../src/close-codes';

describe('close code classification (PROTOCOL.md, "Close codes")', () => {
  it('the codes a close frame may carry without ending the session are exactly these', () => {
    const transient = Object.entries(CloseCode).filter(([, c]) => isTransient(c)).map(([n]) => n);
    expect(transient.sort()).toEqual(['Conflict', 'GoingAway', 'HeartbeatTimeout', 'InternalError', 'Overloaded']);
  });

  it('the fatal codes (never retried) are exactly these; every transient code is retryable', () => {
    const fatal = Object.entries(CloseCode).filter(([, c]) => !isRetryable(c)).map(([n]) => n);
    expect(fatal.sort()).toEqual(['BadFrame', 'BufferOverflow', 'ForbiddenOrigin', 'MessageTooBig', 'NoTransport', 'Normal', 'PayloadTooLarge', 'RetriesExhausted', 'UnsupportedVersion']);
    for (const c of Object.values(CloseCode)) if (isTransient(c)) expect(isRetryable(c)).toBe(true);
  });

  it('an application code (4000) or an unknown one is retryable but not transient', () => {
    expect(isRetryable(4000)).toBe(true);
    expect(isTransient(4000)).toBe(false);
    expect(isRetryable(1006)).toBe(true);
  });
});
