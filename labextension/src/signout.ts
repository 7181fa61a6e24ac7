/**
 * Sign-out commands and the dialog that lists the signed-in deployments.
 */

import {
  Dialog,
  InputDialog,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IDeployment, signOut } from './api';
import {
  describeExpiry,
  describeSignInTime,
  routeOf,
  userLabel
} from './format';
import { SignInModel } from './model';
import { notifyError } from './request';

/**
 * Sign out of the deployment that serves `route` and report the result.
 * Returns false when the request failed.
 */
export async function signOutOfRoute(
  model: SignInModel,
  route: string,
  deployment?: string
): Promise<boolean> {
  try {
    model.update(await signOut(route));
  } catch (error) {
    notifyError(`Could not sign out of ${deployment ?? route}`, error);
    return false;
  }
  Notification.success(`Signed out of ${deployment ?? route}.`, {
    autoClose: 5000
  });
  return true;
}

/**
 * Ask which deployment to sign out of, then sign out of it.
 */
export async function promptAndSignOut(model: SignInModel): Promise<void> {
  const deployments = await currentDeployments(model);
  if (deployments === null) {
    return;
  }
  if (deployments.length === 0) {
    Notification.info('You are not signed in to any Pomerium deployment.', {
      autoClose: 5000
    });
    return;
  }
  const labels = deployments.map(
    item => `${userLabel(item)} at ${item.deployment}`
  );
  const result = await InputDialog.getItem({
    title: 'Sign out of a Pomerium deployment',
    label: 'Deployment:',
    items: labels,
    current: 0,
    okLabel: 'Sign out'
  });
  if (!result.button.accept || result.value === null) {
    return;
  }
  const chosen = deployments[labels.indexOf(result.value)];
  if (chosen === undefined) {
    return;
  }
  await signOutOfDeployment(model, chosen);
}

/**
 * Sign out of one deployment through one of its routes.
 */
export async function signOutOfDeployment(
  model: SignInModel,
  deployment: IDeployment
): Promise<boolean> {
  const route = routeOf(deployment);
  if (route === null) {
    // The logout endpoint finds a deployment by route only.
    Notification.error(
      `No route is recorded for ${deployment.deployment}, so it cannot be ` +
        'signed out of alone. Use "Sign out of all Pomerium deployments".',
      { autoClose: false }
    );
    return false;
  }
  return signOutOfRoute(model, route, deployment.deployment);
}

/**
 * Ask for confirmation, then remove every stored Pomerium token.
 */
export async function promptAndSignOutAll(model: SignInModel): Promise<void> {
  const result = await showDialog({
    title: 'Sign out of all Pomerium deployments',
    body:
      'Remove every stored Pomerium token of this Jupyter server? Running ' +
      'kernels that use them must sign in again.',
    buttons: [
      Dialog.cancelButton(),
      Dialog.warnButton({ label: 'Sign out of all' })
    ]
  });
  if (result.button.accept) {
    await signOutOfAll(model);
  }
}

/**
 * Remove every stored Pomerium token without asking.
 */
export async function signOutOfAll(model: SignInModel): Promise<boolean> {
  try {
    model.update(await signOut(null));
  } catch (error) {
    notifyError('Could not sign out of the Pomerium deployments', error);
    return false;
  }
  Notification.success('Signed out of all Pomerium deployments.', {
    autoClose: 5000
  });
  return true;
}

/**
 * The result of the sign-ins dialog: which follow-up action was chosen.
 */
export type SignInsDialogAction = 'sign-in' | 'sign-out-all' | null;

/**
 * Show the signed-in deployments with a sign-out button for each. Resolves
 * with the follow-up action chosen with the dialog's buttons.
 */
export async function showSignInsDialog(
  model: SignInModel
): Promise<SignInsDialogAction> {
  model.refresh().catch(() => undefined);
  const body = new SignInsBody(model);
  const result = await showDialog({
    title: 'Pomerium sign-ins',
    body,
    buttons: [
      Dialog.cancelButton({ label: 'Close' }),
      Dialog.warnButton({
        label: 'Sign out of all',
        actions: ['sign-out-all']
      }),
      Dialog.okButton({ label: 'Sign in…', actions: ['sign-in'] })
    ]
  });
  body.dispose();
  if (!result.button.accept) {
    return null;
  }
  return result.button.actions.includes('sign-out-all')
    ? 'sign-out-all'
    : 'sign-in';
}

async function currentDeployments(
  model: SignInModel
): Promise<IDeployment[] | null> {
  try {
    await model.refresh();
  } catch (error) {
    notifyError('Could not list the Pomerium sign-ins', error);
    return null;
  }
  return model.status?.deployments ?? [];
}

/**
 * The body of the sign-ins dialog. It follows the model, so sign-outs from
 * its buttons or elsewhere show up while it is open.
 */
class SignInsBody extends Widget {
  constructor(private readonly _model: SignInModel) {
    super();
    this.addClass('jp-PomeriumSignIns');
    this._model.changed.connect(this.render, this);
    this.render();
  }

  render(): void {
    const node = this.node;
    node.replaceChildren();
    const status = this._model.status;
    if (status === null) {
      node.appendChild(
        paragraph(
          this._model.error ?? 'Loading the Pomerium sign-ins…',
          'jp-PomeriumSignIns-empty'
        )
      );
      return;
    }
    if (status.deployments.length === 0) {
      node.appendChild(
        paragraph(
          'You are not signed in to any Pomerium deployment.',
          'jp-PomeriumSignIns-empty'
        )
      );
      return;
    }
    const now = Date.now() / 1000;
    const list = document.createElement('ul');
    list.className = 'jp-PomeriumSignIns-list';
    for (const deployment of status.deployments) {
      list.appendChild(this._renderItem(deployment, now));
    }
    node.appendChild(list);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._model.changed.disconnect(this.render, this);
    super.dispose();
  }

  private _renderItem(deployment: IDeployment, now: number): HTMLElement {
    const item = document.createElement('li');
    item.className = 'jp-PomeriumSignIns-item';
    item.dataset.deployment = deployment.deployment;

    const details = document.createElement('div');
    details.className = 'jp-PomeriumSignIns-details';
    details.appendChild(
      paragraph(userLabel(deployment), 'jp-PomeriumSignIns-user')
    );
    details.appendChild(
      paragraph(deployment.deployment, 'jp-PomeriumSignIns-deployment')
    );
    details.appendChild(
      paragraph(
        `${describeSignInTime(deployment.obtained_at, now)}, ` +
          describeExpiry(deployment.expires_at, now),
        'jp-PomeriumSignIns-times'
      )
    );
    if (deployment.routes.length > 0) {
      details.appendChild(
        paragraph(
          `Routes: ${deployment.routes.join(', ')}`,
          'jp-PomeriumSignIns-routes'
        )
      );
    }
    item.appendChild(details);

    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'jp-mod-styled jp-mod-warn';
    button.textContent = 'Sign out';
    button.title = `Sign out of ${deployment.deployment}`;
    button.addEventListener('click', () => {
      button.disabled = true;
      void signOutOfDeployment(this._model, deployment).finally(() => {
        button.disabled = false;
      });
    });
    item.appendChild(button);
    return item;
  }
}

function paragraph(text: string, className: string): HTMLElement {
  const element = document.createElement('p');
  element.className = className;
  element.textContent = text;
  return element;
}
