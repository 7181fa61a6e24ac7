/**
 * The signed-in deployments as last reported by the Jupyter server.
 */

import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { IDisposable } from '@lumino/disposable';

import {
  BROADCAST_CHANNEL,
  fetchStatus,
  ISignInMessage,
  isSignInMessage,
  IStatus
} from './api';
import { errorText } from './request';

/**
 * Milliseconds between status requests while the page is visible.
 */
export const STATUS_INTERVAL = 10_000;

/**
 * Keeps the status of the Pomerium sign-ins current.
 *
 * It polls the status endpoint every `STATUS_INTERVAL` while the page is
 * visible, with backoff after errors. It also refreshes at once when the page
 * becomes visible or when the callback page of any sign-in posts on the
 * broadcast channel, so sign-ins and sign-outs from other tabs show up.
 */
export class SignInModel implements IDisposable {
  constructor() {
    this._poll = new Poll({
      auto: true,
      factory: () => this.refresh(),
      frequency: {
        interval: STATUS_INTERVAL,
        backoff: true,
        max: 30 * STATUS_INTERVAL
      },
      name: 'pomerium-jupyter:status',
      standby: 'when-hidden'
    });
    if (typeof BroadcastChannel !== 'undefined') {
      this._channel = new BroadcastChannel(BROADCAST_CHANNEL);
      this._channel.addEventListener('message', this._onMessage);
    }
    document.addEventListener('visibilitychange', this._onVisibility);
  }

  /**
   * The last status received, or null before the first response.
   */
  get status(): IStatus | null {
    return this._status;
  }

  /**
   * The message of the last failed status request, or null after a success.
   */
  get error(): string | null {
    return this._error;
  }

  /**
   * Emitted after every status request, including ones that changed nothing,
   * so views can update relative times.
   */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /**
   * Emitted with each message the callback page posts after a sign-in.
   */
  get signInMessage(): ISignal<this, ISignInMessage> {
    return this._signInMessage;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * Request the status now. Rejects with the request error, which is also
   * stored in `error`.
   */
  async refresh(): Promise<void> {
    try {
      const status = await fetchStatus();
      this.update(status);
    } catch (error) {
      const message = errorText(error);
      if (message !== this._error) {
        // Logged once per distinct failure, because the poll repeats it.
        console.warn(`Pomerium status request failed: ${message}`);
      }
      this._error = message;
      this._changed.emit();
      throw error;
    }
  }

  /**
   * Store a status received from any endpoint, such as a sign-out response.
   */
  update(status: IStatus): void {
    this._status = {
      deployments: Array.isArray(status.deployments) ? status.deployments : [],
      allowed_routes: Array.isArray(status.allowed_routes)
        ? status.allowed_routes
        : null
    };
    this._error = null;
    this._changed.emit();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._poll.dispose();
    document.removeEventListener('visibilitychange', this._onVisibility);
    if (this._channel) {
      this._channel.removeEventListener('message', this._onMessage);
      this._channel.close();
      this._channel = null;
    }
    Signal.clearData(this);
  }

  private _onMessage = (event: MessageEvent): void => {
    if (!isSignInMessage(event.data)) {
      return;
    }
    this._signInMessage.emit(event.data);
    this._refreshQuietly();
  };

  private _onVisibility = (): void => {
    if (document.visibilityState === 'visible') {
      this._refreshQuietly();
    }
  };

  private _refreshQuietly(): void {
    // Failures are already stored in `error` and logged by `refresh`.
    this.refresh().catch(() => undefined);
  }

  private _poll: Poll;
  private _channel: BroadcastChannel | null = null;
  private _status: IStatus | null = null;
  private _error: string | null = null;
  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
  private _signInMessage = new Signal<this, ISignInMessage>(this);
}
