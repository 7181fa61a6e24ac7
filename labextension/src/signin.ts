/**
 * Sign-in: ask for a route, open the popup and follow the flow to its end.
 */

import { InputDialog, Notification } from '@jupyterlab/apputils';

import { fetchRequestState, IRequestState, startUrl } from './api';
import { newRequestId, normalizeRoute, offeredRoutes } from './format';
import { SignInModel } from './model';
import { errorText, PomeriumRequestError } from './request';

/**
 * Milliseconds between requests for the state of a running sign-in.
 */
export const FOLLOW_INTERVAL = 1000;

// The popup's first request reaches the server some time after window.open,
// and until then the request id is unknown (404). After this many 404
// responses in a row the popup is taken to have failed to load.
const MAX_UNKNOWN_ANSWERS = 30;
// Consecutive network or server errors tolerated while following a sign-in.
const MAX_FAILED_REQUESTS = 3;

const POPUP_FEATURES = 'popup,width=520,height=720';

/**
 * Ask for a route URL and start signing in to it.
 *
 * The popup is opened right after the dialog closes, with no request in
 * between, so the click on the dialog's "Sign in" button still counts as the
 * user gesture that browsers require for `window.open`.
 */
export async function promptAndSignIn(
  model: SignInModel,
  defaultRoutes: readonly string[]
): Promise<void> {
  const routes = offeredRoutes(
    defaultRoutes,
    model.status?.allowed_routes ?? null
  );
  const title = 'Sign in to a Pomerium route';
  const label = 'Route URL (a Pomerium-protected address):';
  const placeholder = routes[0] ?? 'https://app.example.com';
  const result =
    routes.length > 0
      ? await InputDialog.getItem({
          title,
          label,
          items: routes,
          current: 0,
          editable: true,
          placeholder,
          okLabel: 'Sign in'
        })
      : await InputDialog.getText({
          title,
          label,
          placeholder,
          okLabel: 'Sign in'
        });
  if (!result.button.accept || !result.value) {
    return;
  }
  signIn(model, result.value);
}

/**
 * Open the sign-in popup for `route` and follow the sign-in.
 *
 * Call it synchronously from a user gesture. When the browser blocks the
 * popup, a notification offers a button that opens it with a new gesture.
 */
export function signIn(model: SignInModel, routeInput: string): void {
  let route: string;
  try {
    route = normalizeRoute(routeInput);
  } catch (error) {
    Notification.error(errorText(error), { autoClose: false });
    return;
  }
  const requestId = newRequestId();
  const url = startUrl(route, requestId);
  if (openPopup(url, requestId)) {
    void followSignIn(model, route, requestId);
    return;
  }
  Notification.warning(
    `The browser blocked the Pomerium sign-in window for ${route}. ` +
      'Open it with the button below, or allow pop-ups for this site.',
    {
      autoClose: false,
      actions: [
        {
          label: 'Open sign-in window',
          displayType: 'accent',
          callback: () => {
            if (openPopup(url, requestId)) {
              void followSignIn(model, route, requestId);
            } else {
              Notification.error(
                'The browser blocked the sign-in window again. Allow pop-ups ' +
                  `for ${window.location.origin} and start the sign-in again.`,
                { autoClose: false }
              );
            }
          }
        }
      ]
    }
  );
}

function openPopup(url: string, requestId: string): boolean {
  const popup = window.open(url, `pomerium_${requestId}`, POPUP_FEATURES);
  if (popup === null) {
    return false;
  }
  // The popup goes on to Pomerium and the identity provider, which have no
  // reason to script this page; cutting the link prevents tabnabbing.
  try {
    popup.opener = null;
  } catch {
    // Some browsers make `opener` read-only; the callback page never uses it.
  }
  return true;
}

/**
 * Poll the state of the sign-in `requestId` until it ends, and show its
 * progress and result in one notification.
 */
export async function followSignIn(
  model: SignInModel,
  route: string,
  requestId: string
): Promise<IRequestState | null> {
  const notification = Notification.emit(
    `Signing in to ${route}: finish the sign-in in the pop-up window.`,
    'in-progress',
    { autoClose: false }
  );
  const finish = (
    message: string,
    type: 'success' | 'error' | 'warning'
  ): void => {
    Notification.update({
      id: notification,
      message,
      type,
      autoClose: type === 'success' ? 5000 : false
    });
  };

  // A broadcast from the callback page ends the current wait early.
  let wake: (() => void) | null = null;
  const onMessage = (_: SignInModel, message: { request: string | null }) => {
    if (message.request === requestId && wake) {
      wake();
    }
  };
  model.signInMessage.connect(onMessage);

  let unknownAnswers = 0;
  let failedRequests = 0;
  try {
    for (;;) {
      await new Promise<void>(resolve => {
        const timer = window.setTimeout(resolve, FOLLOW_INTERVAL);
        wake = () => {
          window.clearTimeout(timer);
          resolve();
        };
      });
      wake = null;

      let state: IRequestState;
      try {
        state = await fetchRequestState(requestId);
      } catch (error) {
        if (error instanceof PomeriumRequestError && error.status === 404) {
          unknownAnswers += 1;
          if (unknownAnswers < MAX_UNKNOWN_ANSWERS) {
            continue;
          }
          finish(
            `The sign-in to ${route} did not start: the pop-up window never ` +
              'reached the Jupyter server. Close it and try again.',
            'error'
          );
          return null;
        }
        failedRequests += 1;
        if (failedRequests < MAX_FAILED_REQUESTS) {
          continue;
        }
        finish(
          `Could not follow the sign-in to ${route}: ${errorText(error)}`,
          'error'
        );
        return null;
      }
      unknownAnswers = 0;
      failedRequests = 0;

      if (state.status === 'pending') {
        continue;
      }
      if (state.status === 'done') {
        const user = state.user || 'an unnamed user';
        finish(`Signed in to ${state.deployment ?? route} as ${user}`, 'success');
        model.refresh().catch(() => undefined);
        return state;
      }
      finish(
        state.message ??
          (state.status === 'expired'
            ? `The sign-in to ${route} expired before it finished. ` +
              'Start it again.'
            : `The sign-in to ${route} failed.`),
        'error'
      );
      return state;
    }
  } finally {
    model.signInMessage.disconnect(onMessage);
  }
}
