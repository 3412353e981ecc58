// A link to a page of the viewer: a real href (open in a new tab works), navigated in place on a plain click.
import type { MouseEvent, ReactNode } from "react";
import { navigate, routeHref, type Route } from "./route";

interface Props {
  to: Route;
  testId?: string;
  current?: boolean;
  className?: string;
  title?: string;
  children: ReactNode;
}

export function Link({ to, testId, current, className, title, children }: Props) {
  const onClick = (event: MouseEvent<HTMLAnchorElement>): void => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return (
    <a href={routeHref(to)} data-testid={testId} aria-current={current ? "page" : undefined} className={className} title={title} onClick={onClick}>
      {children}
    </a>
  );
}
